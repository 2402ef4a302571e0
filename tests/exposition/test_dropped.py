"""The second line of defence: a target whose text cannot be written is left out and counted."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.dropped import DroppedCollector
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.metrics import DropCounter, StorageErrors
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import Target


def state(task_id: str, **kwargs: object) -> TargetState:
    target = Target(api="ai_transcription", region="ap-guangzhou", task_id=task_id)
    return TargetState(target=target, **kwargs)  # type: ignore[arg-type]


def registry_of(states: list[TargetState], drops: DropCounter) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(TaskCollector(lambda: states, lambda: WallSeconds(1000.0), drops=drops))
    registry.register(DroppedCollector(drops))
    return registry


def test_a_lone_surrogate_or_long_id_is_dropped_and_the_rest_served() -> None:
    """Bad ids bypassing validation: /metrics still renders the good target and counts two."""
    drops = DropCounter()
    registry = registry_of([state("good"), state("bad\ud800"), state("x" * 3000),
                            state("resolved", resolved_task_id="r\udfff")], drops)
    text = generate_latest(registry).decode()
    assert 'task_id="good"' in text and "bad" not in text and "x" * 300 not in text
    # counted on every answer that leaves them out, in that same answer
    assert 'trtc_exporter_dropped_series_total{reason="invalid_text"} 3.0' in text


def test_a_target_that_fails_to_render_leaves_nothing_behind() -> None:
    """An exception rendering one target removes its partial series and counts render_error."""
    drops = DropCounter()
    # a start time that is not a number fails the running-seconds subtraction half-way
    broken = state("broken", status="InProgress", start_time="x", last_success=999.0,
                   last_answer=999.0, poll_success=True)
    registry = registry_of([state("a"), broken, state("z")], drops)
    text = generate_latest(registry).decode()
    assert 'task_id="a"' in text and 'task_id="z"' in text and 'task_id="broken"' not in text
    assert drops.snapshot()["render_error"] == 1


def test_storage_errors_are_rendered_with_every_store_present() -> None:
    """trtc_exporter_storage_errors_total has a series per store, 0 until a fault is counted."""
    storage = StorageErrors()
    registry = CollectorRegistry()
    registry.register(DroppedCollector(DropCounter(), storage))
    storage.add("forward_queue")
    values = {store: registry.get_sample_value("trtc_exporter_storage_errors_total",
                                               {"store": store})
              for store in ("registrations", "forward_queue", "redis")}
    assert values == {"registrations": 0.0, "forward_queue": 1.0, "redis": 0.0}
