"""Per-target records and the observed-transcription-time accumulator, on explicit times."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest

from trtc_exporter.api.outcome import Outcome
from trtc_exporter.polling.state import (
    HISTORY_LIMIT,
    StateStore,
    TargetState,
    apply_outcome,
    evolve,
)
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.target import Target

TARGET = Target(api="ai_transcription", region="ap-guangzhou", task_id="t", sdk_app_id=1400000001)
APP = ("ai_transcription", "ap-guangzhou", "1400000001")


def seen(status: str) -> Outcome:
    return Outcome(TaskStatus(status, status, 1.0, "t", "", "r"), 1, 0.01)


def failed(code: str = "InternalError") -> Outcome:
    return Outcome(ApiFailure(code, "x", "r"), 1, 0.01)


def replay(polls: list[tuple[float, Outcome]]) -> float:
    """Feed polls at the given wall times through a store; return the app's accumulated seconds."""
    store = StateStore()
    store.sync([TARGET])
    for when, outcome in polls:
        prev = store.get(TARGET.key)
        assert prev is not None
        store.record_poll(prev, apply_outcome(prev, outcome, 1_000_000 + when))
    return store.usage().get((*APP, ""), 0.0)


def test_time_between_consecutive_in_progress_polls_is_counted() -> None:
    """Three InProgress polls 15 s apart count 30 s, never more than the wall time."""
    assert replay([(0, seen("InProgress")), (15, seen("InProgress")),
                   (30, seen("InProgress"))]) == 30


def test_first_in_progress_poll_counts_nothing() -> None:
    """The time before the first InProgress observation is not known, so it is not counted."""
    assert replay([(0, seen("Preparing")), (15, seen("InProgress"))]) == 0


def test_stretched_intervals_count_the_real_gap() -> None:
    """With intervals stretched to 40 s the full 40 s between polls are counted."""
    assert replay([(0, seen("InProgress")), (40, seen("InProgress"))]) == 40


def test_failed_polls_in_between_bridge_the_gap() -> None:
    """Failures between two InProgress answers leave the gap counted from answer to answer."""
    assert replay([(0, seen("InProgress")), (15, failed()), (30, failed()),
                   (45, seen("InProgress"))]) == 45


def test_flapping_counts_only_in_progress_pairs() -> None:
    """InProgress → Preparing → InProgress → InProgress counts only the last pair."""
    assert replay([(0, seen("InProgress")), (15, seen("Preparing")),
                   (30, seen("InProgress")), (45, seen("InProgress"))]) == 15


def test_restart_loses_the_open_interval() -> None:
    """After a restart (fresh store) the first poll starts counting anew: the gap is lost."""
    before = replay([(0, seen("InProgress")), (15, seen("InProgress"))])
    after = replay([(100, seen("InProgress")), (115, seen("InProgress"))])
    assert before + after == 30  # 15 s + 15 s; the 85 s across the restart are not counted


def test_removed_target_is_not_resurrected_by_an_in_flight_poll() -> None:
    """A poll finishing after its target was removed does not bring the series back."""
    store = StateStore()
    store.sync([TARGET])
    prev = store.get(TARGET.key)
    assert prev is not None
    store.sync([])
    store.record_poll(prev, apply_outcome(prev, seen("InProgress"), 10))
    assert store.get(TARGET.key) is None


def test_not_found_after_seen_marks_the_end() -> None:
    """TaskNotExist after the task was seen sets ended_at; before it was ever seen it does not."""
    fresh = TargetState(TARGET)
    never = apply_outcome(fresh, failed("FailedOperation.TaskNotExist"), 5)
    assert (never.status, never.ended_at, never.last_success) == ("NotFound", None, 0.0)
    running = apply_outcome(fresh, seen("InProgress"), 10)
    gone = apply_outcome(running, failed("FailedOperation.TaskNotExist"), 20)
    assert (gone.status, gone.ended_at, gone.last_success) == ("NotFound", 20, 10)


def test_stopped_then_running_again_clears_the_end() -> None:
    """A task that comes back from Stopped is no longer scheduled for retirement."""
    state = apply_outcome(TargetState(TARGET), seen("Stopped"), 0)
    assert state.ended_at == 0
    state = apply_outcome(state, seen("InProgress"), 15)
    assert state.ended_at is None


def test_translation_targets_also_count_translation_time() -> None:
    """A target with translation: true adds its InProgress time to the translation counter too."""
    store = StateStore()
    translating = Target(api="ai_transcription", region="ap-guangzhou", task_id="tr",
                         sdk_app_id=1400000001, translation=True)
    store.sync([TARGET, translating])
    for target in (TARGET, translating):
        for when in (1_000_000, 1_000_015):
            prev = store.get(target.key)
            assert prev is not None
            store.record_poll(prev, apply_outcome(prev, seen("InProgress"), when))
    assert store.usage()[(*APP, "")] == 30
    assert store.translation_usage()[(*APP, "")] == 15


def test_history_records_transitions_only() -> None:
    """Repeated answers of the same status add nothing; each change adds (time, status)."""
    state = TargetState(TARGET)
    for when, outcome in [(0, seen("Idle")), (15, seen("Idle")), (30, seen("InProgress")),
                          (45, failed()), (60, seen("InProgress")), (75, seen("Stopped"))]:
        state = apply_outcome(state, outcome, when)
    assert state.history == ((0, "Idle"), (30, "InProgress"), (75, "Stopped"))


def test_history_is_bounded() -> None:
    """A flapping target keeps only the last HISTORY_LIMIT transitions, newest last."""
    state = TargetState(TARGET)
    for when in range(3 * HISTORY_LIMIT):
        state = apply_outcome(state, seen("InProgress" if when % 2 else "Idle"), when)
    assert len(state.history) == HISTORY_LIMIT
    assert state.history[-1] == (3 * HISTORY_LIMIT - 1, "InProgress")


def test_retarget_gives_records_the_new_target_and_keeps_their_polls() -> None:
    """A relabelled target keeps what its polls found; a target without a record stays out."""
    store = StateStore()
    store.sync([TARGET])
    prev = store.get(TARGET.key)
    assert prev is not None
    store.put(apply_outcome(prev, seen("InProgress"), 10))
    other = Target(api="ai_transcription", region="ap-guangzhou", task_id="other")
    store.retarget([replace(TARGET, labels=(("team", "x"),)), other])
    state = store.get(TARGET.key)
    assert state is not None and state.target.labels == (("team", "x"),)
    assert state.status == "InProgress"
    assert store.get(other.key) is None


def test_the_resolved_task_id_reuses_the_targets_string() -> None:
    """An answer naming the target's own TaskId stores the target's string, not the answer's
    copy; another id is kept as answered, and an answer without one keeps the last."""
    target = replace(TARGET, task_id="task-one")
    answered = "".join(["task-", "one"])  # equal to the target's TaskId, another object
    assert answered is not target.task_id
    own = Outcome(TaskStatus("InProgress", "InProgress", 1.0, answered, "", "r"), 1, 0.01)
    state = apply_outcome(TargetState(target), own, 10.0)
    assert state.resolved_task_id is target.task_id
    other = Outcome(TaskStatus("InProgress", "InProgress", 1.0, "t-2", "", "r"), 1, 0.01)
    state = apply_outcome(state, other, 20.0)
    assert state.resolved_task_id == "t-2"
    blank = Outcome(TaskStatus("InProgress", "InProgress", 1.0, "", "", "r"), 1, 0.01)
    assert apply_outcome(state, blank, 30.0).resolved_task_id == "t-2"


def test_evolve_makes_the_record_replace_makes_for_every_field() -> None:
    """Each field changed alone, and several at once, give what dataclasses.replace gives."""
    prev = TargetState(Target(api="ai_transcription", region="ap-guangzhou", task_id="t"),
                       status="InProgress", history=((1.0, "InProgress"),), sentences=3)
    other = TargetState(Target(api="ai_transcription", region="ap-tokyo", task_id="u"),
                        status="Stopped", start_time=2.0, resolved_task_id="u", last_success=3.0,
                        last_answer=4.0, last_poll=5.0, poll_success=True,
                        status_change_time=6.0, last_error_code="E", last_request_id="r",
                        last_latency=0.1, attempts=2, interval=7.0, next_poll=8.0, seen=True,
                        ended_at=9.0, not_found_streak=1, history=((2.0, "Stopped"),),
                        sentences=4, last_sentence=10.0, event_time=11.0, first_event=12.0)
    for field in fields(TargetState):
        change = {field.name: getattr(other, field.name)}
        assert evolve(prev, **change) == replace(prev, **change)  # type: ignore[arg-type]
    assert evolve(prev, status="Stopped", attempts=5) == replace(prev, status="Stopped",
                                                                 attempts=5)
    assert evolve(prev) == prev and evolve(prev) is not prev
    with pytest.raises(KeyError):
        evolve(prev, no_such_field=1)
