"""Task lifecycles of the simulator, driven by a FakeClock (no sleeping)."""

from __future__ import annotations

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator.tasks import (
    FOREVER,
    Api,
    StartOutcome,
    Task,
    TaskStore,
)

T0 = 1_795_514_400.0
AI_PHASES = (("idle", 2.0), ("preparing", 3.0), ("in_progress", 10.0), ("stopped", 5.0))
CLOUD_PHASES = (("idle", 1.0), ("in_progress", 20.0), ("exited", 4.0))


def _status(task: Task, now: float) -> str:
    view = task.view(now)
    return "NotFound" if view is None else view.status


def _ai(task_id: str = "t1", **kw: object) -> Task:
    return Task(task_id, Api.AI, 1400000001, "ap-guangzhou", AI_PHASES, T0, **kw)  # type: ignore[arg-type]


def test_ai_task_walks_idle_preparing_inprogress_stopped_then_gone() -> None:
    """A 1.0 task passes through every phase at the configured instants, then stops existing."""
    clock = FakeClock(T0 - 1)
    task = _ai()
    seen = []
    for _ in range(25):
        seen.append(_status(task, clock.time()))
        clock.advance(1)
    assert seen == (
        ["NotFound"]
        + ["Idle"] * 2
        + ["Preparing"] * 3
        + ["InProgress"] * 10
        + ["Stopped"] * 5
        + ["NotFound"] * 4
    )


def test_cloud_task_walks_idle_inprogress_exited_then_gone() -> None:
    """A 2.0 task is Idle, InProgress, Exited, and then unknown to the API."""
    task = Task("c1", Api.CLOUD, 1400000002, "ap-hongkong", CLOUD_PHASES, T0)
    assert [_status(task, T0 + t) for t in (0, 1, 20.9, 21, 24.9, 25)] == [
        "Idle",
        "InProgress",
        "InProgress",
        "Exited",
        "Exited",
        "NotFound",
    ]


def test_start_time_is_the_cycle_start_and_terminal_flag_marks_last_phase() -> None:
    """StartTime stays the creation instant through all phases; only the last phase is terminal."""
    task = _ai()
    views = [task.view(T0 + t) for t in (0, 4, 10, 16)]
    assert all(v is not None and v.start_time == T0 for v in views)
    assert [v.terminal for v in views if v is not None] == [False, False, False, True]


def test_forever_phase_never_ends() -> None:
    """An InProgress phase of FOREVER is still InProgress a year later."""
    phases = (("idle", 0.0), ("preparing", 0.0), ("in_progress", FOREVER), ("stopped", 5.0))
    task = Task("f", Api.AI, 1, "ap-tokyo", phases, T0)
    assert _status(task, T0) == "InProgress"
    assert _status(task, T0 + 365 * 86400) == "InProgress"
    assert task.end_time() == FOREVER


def test_stop_moves_to_stopped_for_its_duration_then_gone() -> None:
    """Stopping an InProgress task shows Stopped for the stop phase, then TaskNotExist."""
    task = _ai()
    assert task.stop(T0 + 7)
    assert _status(task, T0 + 7) == "Stopped"
    assert _status(task, T0 + 11.9) == "Stopped"
    assert _status(task, T0 + 12) == "NotFound"
    assert task.end_time() == T0 + 12


def test_stop_of_a_gone_or_unstarted_task_fails_and_stopping_twice_keeps_first() -> None:
    """Stop is refused before start and after the end; a second stop does not extend Stopped."""
    task = _ai()
    assert not task.stop(T0 - 1)
    assert task.stop(T0 + 1)
    assert task.stop(T0 + 3)
    assert task.stopped_at == T0 + 1
    assert not task.stop(T0 + 100)


def test_repeating_task_loops_with_a_gone_gap_and_new_start_times() -> None:
    """With repeat_after the task is gone for the gap, then starts over with a new StartTime."""
    task = _ai(repeat_after=5.0)
    cycle = 20.0 + 5.0
    assert _status(task, T0 + 21) == "NotFound"
    view = task.view(T0 + cycle + 0.5)
    assert view is not None and view.status == "Idle" and view.start_time == T0 + cycle
    assert _status(task, T0 + 10 * cycle + 6) == "InProgress"


def test_stop_ends_a_repeating_task_for_good() -> None:
    """A stopped repeating task does not come back in a later cycle."""
    task = _ai(repeat_after=5.0)
    task.stop(T0 + 30)
    assert _status(task, T0 + 30) == "Stopped"
    assert _status(task, T0 + 200) == "NotFound"


def test_store_start_refuses_live_duplicates_but_allows_after_stop() -> None:
    """A second task with the same dedupe key is TaskExist until the first one is stopping."""
    store = TaskStore()
    key = ("session", 1, "s")
    first = _ai("a", dedupe_key=key)
    assert store.start(first, T0, None) is StartOutcome.CREATED
    assert store.start(_ai("b", dedupe_key=key), T0 + 1, None) is StartOutcome.EXISTS
    store.stop("a", T0 + 2)
    assert store.start(_ai("b", dedupe_key=key), T0 + 2, None) is StartOutcome.CREATED


def test_store_enforces_the_concurrency_quota_per_app() -> None:
    """With a quota of 2 the third live task of the app is refused; other apps are unaffected."""
    store = TaskStore()
    assert store.start(_ai("a"), T0, 2) is StartOutcome.CREATED
    assert store.start(_ai("b"), T0, 2) is StartOutcome.CREATED
    assert store.start(_ai("c"), T0, 2) is StartOutcome.QUOTA
    other = Task("d", Api.AI, 99, "ap-guangzhou", AI_PHASES, T0)
    assert store.start(other, T0, 2) is StartOutcome.CREATED


def test_find_session_prefers_the_running_task() -> None:
    """A session lookup answers the live task over an older one still in Stopped."""
    store = TaskStore()
    store.add(_ai("old", session_id="s"))
    store.stop("old", T0 + 1)
    store.add(Task("new", Api.AI, 1400000001, "ap-guangzhou", AI_PHASES, T0 - 100.0,
                   session_id="s", repeat_after=0.0))  # fmt: skip
    view = store.find_session(1400000001, "s", T0 + 2)
    assert view is not None and view.task_id == "new"
    assert store.find_session(1400000001, "other", T0) is None


def test_prune_forgets_tasks_gone_long_ago_only() -> None:
    """Pruning removes tasks that ended more than the retention ago and keeps the rest."""
    store = TaskStore()
    store.add(_ai("ended"))
    store.add(_ai("looping", repeat_after=1.0))
    assert store.prune(T0 + 20 + 59, 60) == 0
    assert store.prune(T0 + 20 + 60, 60) == 1
    assert len(store) == 1


def test_duplicate_add_is_an_error() -> None:
    """Adding the same TaskId twice raises instead of silently replacing a task."""
    store = TaskStore()
    store.add(_ai())
    with pytest.raises(ValueError, match="duplicate"):
        store.add(_ai())
