"""The hub: judge, relay, apply and count one callback request."""

from __future__ import annotations

from tests.webhook.helpers import APP, KEY, NOW, body, headers
from trtc_exporter.clock import FakeClock
from trtc_exporter.webhook.effects import Effect, Sentence, TaskStarted
from trtc_exporter.webhook.hub import WebhookHub
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.receiver import RESULTS


class Sink:
    def __init__(self) -> None:
        self.effects: list[Effect] = []
        self.available = True  # False: the store is unreachable, nothing is applied

    def apply(self, effect: Effect) -> bool:
        if self.available:
            self.effects.append(effect)
        return self.available


class Relay:
    def __init__(self) -> None:
        self.sent: list[tuple[bytes, str | None, str, str]] = []

    def enqueue(self, raw: bytes, sign: str | None, sdk_app_id: str, task_key: str) -> bool:
        self.sent.append((raw, sign, sdk_app_id, task_key))
        return True


def hub(clock: FakeClock | None = None) -> tuple[WebhookHub, Sink, Relay, FakeClock]:
    clock = clock or FakeClock(NOW - 100)
    sink, relay = Sink(), Relay()
    return (WebhookHub(KeyRing(KEY), sink, clock, max_age=600.0, relay=relay), sink, relay,
            clock)


def test_a_new_event_is_relayed_applied_and_counted() -> None:
    """A verified start reaches the sink and the relay, counts applied, sets the event time."""
    h, sink, relay, clock = hub()
    clock.advance(100)
    raw = body(etype=901)
    outcome = h.handle(headers(raw), raw)
    assert (outcome.status, outcome.result) == (200, "applied")
    assert isinstance(sink.effects[0], TaskStarted)
    assert relay.sent == [(raw, headers(raw)["Sign"], str(APP), f"{APP}/task-1")]
    stats = h.stats()
    assert stats.requests["applied"] == 1 and stats.last_event_time == NOW


def test_duplicates_count_but_apply_and_relay_once() -> None:
    """TRTC's retry of the same event answers 200 and changes nothing more."""
    h, sink, relay, clock = hub()
    clock.advance(100)
    raw = body(etype=903, payload={"Text": "secret words"})
    for _ in range(3):
        assert h.handle(headers(raw), raw).status == 200
    assert [type(e) for e in sink.effects] == [Sentence] and len(relay.sent) == 1
    assert h.stats().requests["duplicate"] == 2


def test_refusals_change_nothing_and_keep_the_last_event_time() -> None:
    """A forged Sign is counted as bad_signature; no effect, no relay, no sign of life."""
    h, sink, relay, clock = hub()
    started = h.stats().last_event_time
    clock.advance(100)
    raw = body()
    forged = {**headers(raw), "Sign": headers(body(task="other"))["Sign"]}
    assert h.handle(forged, raw).status == 403
    assert (sink.effects, relay.sent) == ([], [])
    assert h.stats().requests["bad_signature"] == 1
    assert h.stats().last_event_time == started


def test_listener_refusals_are_counted_with_every_result_present() -> None:
    """refuse() counts too_large, timeout and bad_request; every result starts at 0."""
    h, *_ = hub()
    outcome = h.refuse(413, "too_large", "body larger than 65536 bytes")
    assert (outcome.status, outcome.result) == (413, "too_large")
    requests = h.stats().requests
    assert set(RESULTS) | {"timeout", "bad_request"} == set(requests)
    assert requests["too_large"] == 1 and sum(requests.values()) == 1


def test_set_keys_swaps_the_key_and_keeps_the_dedupe_memory() -> None:
    """After a reload with a new key, the old key is refused and a retry is still a duplicate."""
    h, _, _, clock = hub()
    clock.advance(100)
    raw = body()
    h.handle(headers(raw), raw)
    h.set_keys(KeyRing(None, allow_unsigned=True), 600.0)
    assert h.handle({"SdkAppId": str(APP)}, raw).result == "duplicate"


def test_a_replay_inside_a_long_max_age_is_still_a_duplicate() -> None:
    """With max_age 1 h, a captured callback replayed 30 min later is not applied again."""
    clock = FakeClock(NOW)
    sink, relay = Sink(), Relay()
    h = WebhookHub(KeyRing(KEY), sink, clock, max_age=3600.0, relay=relay)
    raw = body(etype=902)
    assert h.handle(headers(raw), raw).result == "applied"
    clock.advance(1800)
    assert h.handle(headers(raw), raw).result == "duplicate"
    assert len(sink.effects) == 1 and len(relay.sent) == 1


def test_a_replay_of_a_callback_sent_from_the_future_is_a_duplicate() -> None:
    """A CallbackTs 4 min ahead passes the age check for 14 min; a replay 12 min later is
    remembered."""
    clock = FakeClock(NOW)
    h, sink, _, _ = hub(clock)
    raw = body(etype=903, callback_ms=int((NOW + 240) * 1000))
    assert h.handle(headers(raw), raw).result == "applied"
    clock.advance(720)
    assert h.handle(headers(raw), raw).result == "duplicate"
    assert len(sink.effects) == 1


def test_a_reload_to_a_longer_max_age_keeps_replays_out() -> None:
    """set_keys with a longer max_age lengthens the memory of callbacks seen from then on."""
    clock = FakeClock(NOW)
    h, sink, _, _ = hub(clock)
    h.set_keys(KeyRing(KEY), 7200.0)
    raw = body(etype=901)
    assert h.handle(headers(raw), raw).result == "applied"
    clock.advance(3600)
    assert h.handle(headers(raw), raw).result == "duplicate"
    assert len(sink.effects) == 1


def test_an_effect_not_applied_now_is_answered_503_and_applied_on_the_retry() -> None:
    """Store unreachable: 503, nothing relayed, not remembered, so TRTC's retry applies it."""
    h, sink, relay, clock = hub()
    clock.advance(100)
    raw = body(etype=903)
    sink.available = False
    outcome = h.handle(headers(raw), raw)
    assert (outcome.status, outcome.result) == (503, "unavailable")
    assert sink.effects == [] and relay.sent == []
    assert h.stats().last_event_time == NOW  # verified: a sign of life from TRTC all the same
    sink.available = True
    assert (h.handle(headers(raw), raw).result, len(sink.effects), len(relay.sent)) == (
        "applied", 1, 1)
    assert h.stats().requests["unavailable"] == 1
