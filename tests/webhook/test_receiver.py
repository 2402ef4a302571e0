"""The request-handling core: status, result label and effect for every kind of request."""

from __future__ import annotations

import json

import pytest

from tests.webhook.helpers import APP, KEY, NOW, body, headers
from trtc_exporter.clock import FakeClock
from trtc_exporter.secret import Secret
from trtc_exporter.webhook.dedupe import Deduper
from trtc_exporter.webhook.effects import Sentence, StartFailed, TaskStarted, TaskStopped
from trtc_exporter.webhook.events import MAX_BODY_BYTES
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.receiver import RESULTS, Receiver

OTHER_APP = 1400999999


def _receiver(ring: KeyRing | None = None, clock: FakeClock | None = None) -> Receiver:
    ring = ring or KeyRing(default=None, per_app={APP: KEY})
    return Receiver(ring, Deduper(clock or FakeClock()))


def test_a_signed_start_is_applied_with_its_effect() -> None:
    """A verified 901 answers 200 {"code":0}, result applied, a TaskStarted effect, forward."""
    raw = body(task="t-1", event_ms=1_795_499_999_500)
    outcome = _receiver().handle(headers(raw), raw, NOW)
    assert (outcome.status, outcome.body, outcome.result, outcome.forward) == (
        200, b'{"code":0}', "applied", True)
    assert outcome.effect == TaskStarted(APP, "t-1", "ai_transcription", 1_795_499_999.5,
                                         "1234", 0, None)


@pytest.mark.parametrize(("group", "etype", "payload", "effect_type"), [
    (9, 901, {"Status": 1}, StartFailed), (9, 902, {}, TaskStopped), (9, 903, {}, Sentence),
    (14, 1401, {"Status": 1}, StartFailed), (14, 1402, {}, TaskStopped),
    (14, 1403, {}, Sentence),
])
def test_each_kind_has_its_effect(group: int, etype: int, payload: dict[str, int],
                                  effect_type: type) -> None:
    """Failed starts, stops and sentences of both generations map to their effect types."""
    raw = body(group, etype, payload=payload)
    outcome = _receiver().handle(headers(raw), raw, NOW)
    assert outcome.result == "applied"
    assert isinstance(outcome.effect, effect_type)
    generation = "ai_transcription" if group == 9 else "cloud_transcription"
    assert outcome.effect.generation == generation


@pytest.mark.parametrize(("group", "etype"), [(9, 904), (14, 1404)])
def test_sentence_starts_and_translations_change_nothing(group: int, etype: int) -> None:
    """904 and 1404 are accepted and relayed but have no effect."""
    raw = body(group, etype, payload={})
    outcome = _receiver().handle(headers(raw), raw, NOW)
    assert (outcome.result, outcome.effect, outcome.forward) == ("applied", None, True)


def test_a_duplicate_is_answered_200_and_applied_once() -> None:
    """The same event again (a TRTC retry with a new CallbackTs) is a duplicate, not relayed."""
    receiver = _receiver()
    first = body(9, 903, callback_ms=int(NOW * 1000) - 10_000)
    retry = body(9, 903, callback_ms=int(NOW * 1000))
    assert receiver.handle(headers(first), first, NOW).result == "applied"
    again = receiver.handle(headers(retry), retry, NOW)
    assert (again.status, again.result, again.effect, again.forward) == (
        200, "duplicate", None, False)


def test_a_duplicate_after_ten_minutes_is_applied_again() -> None:
    """The duplicate window is ten minutes of the receiver's clock."""
    clock = FakeClock()
    receiver = _receiver(clock=clock)
    raw = body(9, 903)
    receiver.handle(headers(raw), raw, NOW)
    clock.advance(600)
    assert receiver.handle(headers(raw), raw, NOW).result == "applied"


@pytest.mark.parametrize(("group", "etype", "result"), [
    (9, 905, "conversational_ai"), (9, 909, "conversational_ai"), (1, 103, "unknown_event"),
    (14, 1499, "unknown_event"),
])
def test_other_events_are_counted_and_relayed(group: int, etype: int, result: str) -> None:
    """Conversational AI and unknown types answer 200, change nothing, are relayed."""
    raw = body(group, etype)
    outcome = _receiver().handle(headers(raw), raw, NOW)
    assert (outcome.status, outcome.result, outcome.effect, outcome.forward) == (
        200, result, None, True)


def _refusal(receiver: Receiver, hdrs: dict[str, str], raw: bytes,
             now: float = NOW) -> tuple[int, str, str]:
    outcome = receiver.handle(hdrs, raw, now)
    assert outcome.effect is None and not outcome.forward
    return outcome.status, outcome.result, json.loads(outcome.body)["error"]


def test_refusals_have_their_status_result_and_message() -> None:
    """Every refusal is a clear 4xx with its own result label and changes nothing."""
    receiver, raw = _receiver(), body()
    good = headers(raw)
    assert _refusal(receiver, good, b" " * (MAX_BODY_BYTES + 1)) == (
        413, "too_large", "body larger than 65536 bytes")
    assert _refusal(receiver, {**good, "SdkAppId": "abc"}, raw) == (
        400, "bad_app", "SdkAppId header missing or not an SdkAppId")
    assert _refusal(receiver, {"Sign": good["Sign"]}, raw) == (
        400, "bad_app", "SdkAppId header missing or not an SdkAppId")
    assert _refusal(receiver, headers(raw, app=OTHER_APP), raw) == (
        403, "unknown_app", f"no callback key configured for app {OTHER_APP}")
    assert _refusal(receiver, {"SdkAppId": str(APP)}, raw) == (
        401, "unsigned", "Sign header missing")
    assert _refusal(receiver, headers(raw, key=Secret("Forged1")), raw) == (
        403, "bad_signature", "Sign does not match the body")
    assert _refusal(receiver, {**good, "Sign": "%%%"}, raw) == (
        403, "bad_signature", "Sign does not match the body")


def test_bad_json_and_malformed_fields_are_400_after_verification() -> None:
    """A signed non-JSON body is bad_json; a signed body with a bad field is malformed."""
    receiver = _receiver()
    assert _refusal(receiver, headers(b"{nope"), b"{nope") == (
        400, "bad_json", "body: not valid JSON at line 1 column 2")
    raw = body(task="")
    assert _refusal(receiver, headers(raw), raw) == (
        400, "malformed", "EventInfo.TaskId: must be a non-empty string, got string ''")


def test_stale_and_far_future_callbacks_are_refused() -> None:
    """CallbackTs more than 10 minutes old or 5 minutes ahead is refused; just inside is fine."""
    receiver = _receiver()
    raw = body(callback_ms=int((NOW - 601) * 1000))
    assert _refusal(receiver, headers(raw), raw) == (
        400, "stale", "CallbackTs is 601s old (limit 600s)")
    raw = body(callback_ms=int((NOW + 301) * 1000))
    assert _refusal(receiver, headers(raw), raw) == (
        400, "future", "CallbackTs is 301s in the future (limit 300s)")
    raw = body(task="fresh", callback_ms=int((NOW - 599) * 1000))
    assert receiver.handle(headers(raw), raw, NOW).result == "applied"


def test_a_refused_request_does_not_mark_the_event_as_seen() -> None:
    """A forged copy does not block the genuine event that follows."""
    receiver, raw = _receiver(), body()
    receiver.handle(headers(raw, key=Secret("Forged1")), raw, NOW)
    assert receiver.handle(headers(raw), raw, NOW).result == "applied"


def test_unsigned_callbacks_pass_only_when_allowed() -> None:
    """With allow_unsigned, a Sign-less callback of a keyless app is applied."""
    raw = body()
    open_receiver = _receiver(KeyRing(allow_unsigned=True))
    assert open_receiver.handle({"SdkAppId": str(OTHER_APP)}, raw, NOW).result == "applied"
    keyed = _receiver(KeyRing(per_app={APP: KEY}, allow_unsigned=True))
    assert keyed.handle({"SdkAppId": str(APP)}, raw, NOW).result == "applied"
    forged = headers(body(task="x"), key=Secret("Forged1"))
    assert keyed.handle(forged, body(task="x"), NOW).result == "bad_signature"


def test_the_default_key_serves_apps_without_their_own() -> None:
    """webhook.key_file verifies callbacks of any app that has no key of its own."""
    other = Secret("AppOwn9")
    receiver = _receiver(KeyRing(default=KEY, per_app={APP: other}))
    raw = body()
    assert receiver.handle(headers(raw, app=OTHER_APP), raw, NOW).result == "applied"
    assert receiver.handle(headers(raw, app=APP), raw, NOW).result == "bad_signature"
    assert receiver.handle(headers(raw, app=APP, key=other), raw, NOW).result == "applied"


def test_header_names_are_case_insensitive() -> None:
    """sign/sdkappid in any case are found."""
    raw = body()
    lower = {k.lower(): v for k, v in headers(raw).items()}
    assert _receiver().handle(lower, raw, NOW).result == "applied"


def test_error_bodies_never_echo_the_transcript_or_the_key() -> None:
    """No answer body or label contains the sentence text or the key."""
    receiver = _receiver()
    raw = body(9, 903, payload={"Text": "swordfish"}, RoomIdType=7)
    for hdrs in (headers(raw), headers(raw, key=Secret("Forged1")), {"SdkAppId": str(APP)}):
        outcome = receiver.handle(hdrs, raw, NOW)
        assert outcome.result in RESULTS
        assert b"swordfish" not in outcome.body and KEY.reveal().encode() not in outcome.body
