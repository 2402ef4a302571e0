"""The webhook collector: per-task sentences and silence, failed starts, listener and relay."""

from __future__ import annotations

from dataclasses import replace

from prometheus_client import CollectorRegistry, generate_latest

from trtc_exporter.exposition.webhooks import FAMILIES, WebhookCollector
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import Target
from trtc_exporter.webhook.forward import LATENCY_BUCKETS, ForwardStats
from trtc_exporter.webhook.hub import WebhookStats
from trtc_exporter.webhook.silence import SilenceRule

NOW = 1_795_514_400.0
TARGET = Target(api="ai_transcription", region="ap-guangzhou", task_id="t1", sdk_app_id=7,
                labels=(("team", "live"),))


def running(**changes: object) -> TargetState:
    base = TargetState(TARGET, status="InProgress", last_answer=NOW - 1, interval=10.0,
                       start_time=NOW - 600, event_time=NOW - 1, first_event=NOW - 590)
    return replace(base, **changes)  # type: ignore[arg-type]


def registry(states: list[TargetState], forward: ForwardStats | None = None
             ) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(WebhookCollector(
        lambda: states, lambda: NOW, lambda: WebhookStats({"applied": 3}, NOW - 5),
        lambda: {("ai_transcription", "7"): 2}, lambda: SilenceRule(300.0),
        (lambda: forward) if forward is not None else None))
    return reg


def silent(reg: CollectorRegistry) -> float | None:
    return reg.get_sample_value("trtc_ai_transcription_silent", {
        "api": "ai_transcription", "region": "ap-guangzhou", "task_id": "t1",
        "sdk_app_id": "7", "session_id": "", "team": "live"})


def test_task_families_keep_identity_and_operator_labels() -> None:
    """Sentences and last-sentence time carry the identity labels plus the target's labels."""
    reg = registry([running(sentences=4, last_sentence=NOW - 10)])
    labels = {"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "t1",
              "sdk_app_id": "7", "session_id": "", "team": "live"}
    assert reg.get_sample_value("trtc_ai_transcription_sentences_total", labels) == 4
    assert reg.get_sample_value("trtc_ai_transcription_last_sentence_time_seconds",
                                labels) == NOW - 10
    assert silent(reg) == 0


def test_silent_when_inprogress_long_with_no_recent_sentence() -> None:
    """InProgress 10 min, last sentence 6 min ago (limit 5 min): silent."""
    assert silent(registry([running(last_sentence=NOW - 360)])) == 1
    assert silent(registry([running()])) == 1  # never a sentence


def test_not_silent_when_not_judged() -> None:
    """Young tasks, ended tasks and tasks no callback mentioned are never silent."""
    assert silent(registry([running(start_time=NOW - 60)])) == 0
    assert silent(registry([running(status="Stopped")])) == 0
    assert silent(registry([running(event_time=0.0, first_event=0.0)])) == 0
    assert silent(registry([running(first_event=NOW - 200)])) == 0  # listening for 200 s only


def test_health_failures_and_no_relay_families_without_forward_to() -> None:
    """Requests, last event time and failed starts; forward_* only with webhook.forward_to."""
    reg = registry([])
    assert reg.get_sample_value("trtc_exporter_webhook_requests_total",
                                {"result": "applied"}) == 3
    assert reg.get_sample_value("trtc_exporter_webhook_last_event_time_seconds") == NOW - 5
    assert reg.get_sample_value("trtc_ai_transcription_start_failures_total",
                                {"api": "ai_transcription", "sdk_app_id": "7"}) == 2
    assert b"forward" not in generate_latest(reg)


def test_failed_starts_are_zero_before_the_first_failure() -> None:
    """Apps of the config and of the targets have a 0 series for both generations before any
    failure, so increase() over a window sees the first failed start (a series born at 1 shows
    no increase, and TrtcTaskStartFailures would miss it)."""
    reg = CollectorRegistry()
    reg.register(WebhookCollector(
        lambda: [running()], lambda: NOW, lambda: WebhookStats({}, NOW),
        lambda: {("cloud_transcription", "9"): 1}, lambda: SilenceRule(300.0), None,
        lambda: [1400000001]))

    def failures(api: str, app: str) -> float | None:
        return reg.get_sample_value("trtc_ai_transcription_start_failures_total",
                                    {"api": api, "sdk_app_id": app})

    for app in ("1400000001", "7"):  # from apps: and from the target
        assert failures("ai_transcription", app) == 0
        assert failures("cloud_transcription", app) == 0
    assert failures("cloud_transcription", "9") == 1  # counted, app known only by its failure


def test_every_family_is_rendered_with_forwarding() -> None:
    """All webhook families appear, the latency histogram from the relay's buckets."""
    stats = ForwardStats(5, 2, {"expired": 1}, 3,
                         tuple((b, 5 if b >= 0.5 else 0) for b in LATENCY_BUCKETS), 2.0, 5)
    text = generate_latest(registry([running()], stats)).decode()
    for name in FAMILIES:
        assert f"# TYPE {name} " in text, name
    assert 'trtc_exporter_webhook_forward_latency_seconds_bucket{le="+Inf"} 5.0' in text
    assert 'trtc_exporter_webhook_forward_dropped_total{reason="queue_full"} 0.0' in text
