"""Dispatching an outcome: relay exactly what was received, then apply the effect once."""

from __future__ import annotations

from tests.webhook.helpers import APP, KEY, NOW, body, headers
from trtc_exporter.clock import FakeClock
from trtc_exporter.webhook.dedupe import Deduper
from trtc_exporter.webhook.dispatch import dispatch
from trtc_exporter.webhook.effects import Effect, Sentence
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.receiver import Receiver


class RecordingSink:
    def __init__(self) -> None:
        self.effects: list[Effect] = []

    def apply(self, effect: Effect) -> bool:
        self.effects.append(effect)
        return True


class RecordingRelay:
    def __init__(self) -> None:
        self.items: list[tuple[bytes, str | None, str, str]] = []

    def enqueue(self, body: bytes, sign: str | None, sdk_app_id: str, task_key: str) -> bool:
        self.items.append((body, sign, sdk_app_id, task_key))
        return True


def test_a_sentence_is_relayed_unchanged_and_applied_once() -> None:
    """Raw body and Sign/SdkAppId as received go to the relay; a retry changes nothing more."""
    receiver = Receiver(KeyRing(per_app={APP: KEY}), Deduper(FakeClock()))
    sink, relay = RecordingSink(), RecordingRelay()
    raw = body(9, 903, task="t-7", event_ms=1_795_499_999_000)
    hdrs = {"sign": headers(raw)["Sign"], "SDKAPPID": f" {APP}"}
    for _ in range(3):
        assert dispatch(receiver.handle(hdrs, raw, NOW), hdrs, raw, sink, relay)
    assert sink.effects == [Sentence(APP, "t-7", "ai_transcription", 1_795_499_999.0)]
    assert relay.items == [(raw, hdrs["sign"], f" {APP}", f"{APP}/t-7")]


def test_refused_callbacks_are_neither_relayed_nor_applied() -> None:
    """A forged callback reaches neither the sink nor the relay."""
    receiver = Receiver(KeyRing(per_app={APP: KEY}), Deduper(FakeClock()))
    sink, relay = RecordingSink(), RecordingRelay()
    raw = body()
    hdrs = {**headers(raw), "Sign": headers(body(task="other"))["Sign"]}
    dispatch(receiver.handle(hdrs, raw, NOW), hdrs, raw, sink, relay)
    assert sink.effects == [] and relay.items == []
