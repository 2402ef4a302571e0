"""Per-application totals: which targets are counted, and what the collector keeps per target."""

from __future__ import annotations

from dataclasses import replace

from trtc_exporter.config.model import parse_config
from trtc_exporter.exposition.apps import AppCollector
from trtc_exporter.polling.state import StateStore
from trtc_exporter.target import MAX_ID_CHARS, Target

CONFIG = parse_config({"targets": [{"task_id": "x"}]})


def _target(task_id: str, label: str = "ok") -> Target:
    return Target(api="ai_transcription", region="ap-guangzhou", task_id=task_id,
                  labels=(("team", label),))


def _counted(collector: AppCollector) -> float:
    tasks = next(m for m in collector.collect() if m.name == "trtc_ai_transcription_tasks")
    return sum(s.value for s in tasks.samples)


def test_unprintable_targets_are_left_out_until_their_target_changes() -> None:
    """A target with a label value past the bound is not counted; once replaced by a printable
    Target it is, and the collector keeps each checked Target itself, not a pair per target."""
    store = StateStore()
    good, long = _target("a"), _target("b", "v" * (MAX_ID_CHARS + 1))
    store.sync([good, long])
    collector = AppCollector(store, lambda: CONFIG, lambda: 1000.0)
    assert _counted(collector) == 1
    fixed = replace(long, labels=(("team", "short"),))
    store.retarget([fixed])
    assert _counted(collector) == 2
    printable, unprintable = collector._checked
    assert printable == {good.key: good, fixed.key: fixed} and unprintable == {}
    assert printable[fixed.key] is fixed
