"""Task lifecycles as pure functions of time, so tests can ask "what does the API say at t?".

A task never stores its status: it stores when it began and how long each phase lasts, and the
status at any instant is computed. That keeps the model exact on a ``FakeClock`` (no background
thread advances anything) and makes the simulator's "truth" endpoint and its API answers agree by
construction.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum, StrEnum

FOREVER = math.inf
"""Duration of a phase that never ends (e.g. a task left InProgress)."""

AI_MAX_LIFETIME = 10 * 3600.0
"""A 1.0 task that is never stopped exits by itself after 10 hours (TRTC documentation)."""


class Api(StrEnum):
    """Which API generation a task belongs to; the value is the exporter's ``api`` label."""

    AI = "ai_transcription"
    CLOUD = "cloud_transcription"


PHASES: dict[Api, tuple[str, ...]] = {
    Api.AI: ("idle", "preparing", "in_progress", "stopped"),
    Api.CLOUD: ("idle", "in_progress", "exited"),
}
"""Phase names in lifecycle order; the last one is where a stop request sends the task."""

STATUS: dict[str, str] = {
    "idle": "Idle",
    "preparing": "Preparing",
    "in_progress": "InProgress",
    "stopped": "Stopped",
    "exited": "Exited",
}
"""API spelling of each phase."""

REGIONS: dict[Api, tuple[str, ...]] = {
    Api.AI: ("ap-guangzhou", "ap-singapore", "ap-tokyo", "na-siliconvalley"),
    Api.CLOUD: ("ap-guangzhou", "ap-hongkong", "ap-singapore"),
}
"""Regions each API generation accepts, from the intl API pages."""


class StartOutcome(Enum):
    """Result of trying to add a task through a Start/Create action."""

    CREATED = "created"
    EXISTS = "exists"
    QUOTA = "quota"


@dataclass(frozen=True, slots=True)
class TaskView:
    """What the API would answer about a task at one instant."""

    task_id: str
    api: Api
    status: str
    start_time: float
    sdk_app_id: int
    session_id: str | None
    region: str
    terminal: bool


@dataclass(slots=True)
class Task:
    """One transcription task: identity plus a timetable; mutable only through ``stop``."""

    task_id: str
    api: Api
    sdk_app_id: int
    region: str
    phases: tuple[tuple[str, float], ...]
    origin: float
    session_id: str | None = None
    dedupe_key: tuple[object, ...] | None = None
    repeat_after: float | None = None
    stopped_at: float | None = None
    stopped_cycle_start: float | None = None

    def _cycle(self, now: float) -> tuple[float, float]:
        """Start of the current cycle and the time elapsed in it (repeating tasks loop)."""
        if self.repeat_after is None:
            return self.origin, now - self.origin
        length = sum(d for _, d in self.phases) + self.repeat_after
        k = math.floor((now - self.origin) / length)
        start = self.origin + k * length
        return start, now - start

    def view(self, now: float) -> TaskView | None:
        """The task as the API sees it at ``now``; None while it does not exist (before/gone)."""
        if now < self.origin:
            return None
        if self.stopped_at is not None and now >= self.stopped_at:
            final_name, final_duration = self.phases[-1]
            if now >= self.stopped_at + final_duration:
                return None
            start = self.stopped_cycle_start if self.stopped_cycle_start is not None else now
            return self._make_view(final_name, start)
        start, elapsed = self._cycle(now)
        for name, duration in self.phases:
            if elapsed < duration:
                return self._make_view(name, start)
            elapsed -= duration
        return None

    def _make_view(self, phase: str, start: float) -> TaskView:
        return TaskView(
            task_id=self.task_id,
            api=self.api,
            status=STATUS[phase],
            start_time=start,
            sdk_app_id=self.sdk_app_id,
            session_id=self.session_id,
            region=self.region,
            terminal=phase == self.phases[-1][0],
        )

    def end_time(self) -> float:
        """When the task stops existing for good (``FOREVER`` while it may still run or loop)."""
        if self.stopped_at is not None:
            return self.stopped_at + self.phases[-1][1]
        if self.repeat_after is not None:
            return FOREVER
        return self.origin + sum(d for _, d in self.phases)

    def stop(self, now: float) -> bool:
        """Send the task to its final phase (Stopped/Exited); False when it does not exist."""
        current = self.view(now)
        if current is None:
            return False
        if not current.terminal:
            self.stopped_at = now
            self.stopped_cycle_start = current.start_time
        return True


class TaskStore:
    """All tasks of one simulator, safe to use from the server's request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}

    def add(self, task: Task) -> None:
        """Register a task; a duplicate TaskId is a programming or scenario error."""
        with self._lock:
            if task.task_id in self._tasks:
                raise ValueError(f"duplicate task id {task.task_id!r}")
            self._tasks[task.task_id] = task

    def view(self, task_id: str, now: float) -> TaskView | None:
        """The task's current view, or None when unknown or not existing at ``now``."""
        with self._lock:
            task = self._tasks.get(task_id)
            return task.view(now) if task is not None else None

    def stop(self, task_id: str, now: float) -> TaskView | None:
        """Stop a task and return its new view; None when it does not exist."""
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or not task.stop(now):
                return None
            return task.view(now)

    def find_session(self, sdk_app_id: int, session_id: str, now: float) -> TaskView | None:
        """The 1.0 task started with this SessionId: a running one first, else the newest."""
        with self._lock:
            views = [
                v
                for v in self._views(now)
                if v.api is Api.AI and v.sdk_app_id == sdk_app_id and v.session_id == session_id
            ]
        views.sort(key=lambda v: (not v.terminal, v.start_time))
        return views[-1] if views else None

    def start(self, task: Task, now: float, quota: int | None) -> StartOutcome:
        """Add a task unless a live duplicate exists or the app's concurrency quota is full."""
        with self._lock:
            live = [
                (t, v)
                for t in self._tasks.values()
                if (v := t.view(now)) is not None and not v.terminal
            ]
            key = task.dedupe_key
            if key is not None and any(t.dedupe_key == key for t, _ in live):
                return StartOutcome.EXISTS
            if quota is not None and sum(v.sdk_app_id == task.sdk_app_id for _, v in live) >= quota:
                return StartOutcome.QUOTA
            if task.task_id in self._tasks:
                return StartOutcome.EXISTS
            self._tasks[task.task_id] = task
            return StartOutcome.CREATED

    def prune(self, now: float, older_than: float) -> int:
        """Forget non-repeating tasks that have been gone for a while; returns how many."""
        with self._lock:
            dead = [tid for tid, t in self._tasks.items() if t.end_time() + older_than <= now]
            for tid in dead:
                del self._tasks[tid]
        return len(dead)

    def snapshot(self, now: float) -> list[tuple[Task, TaskView | None]]:
        """Every task with its current view, in insertion order (for the truth endpoint)."""
        with self._lock:
            return [(t, t.view(now)) for t in self._tasks.values()]

    def _views(self, now: float) -> Iterator[TaskView]:
        for task in self._tasks.values():
            view = task.view(now)
            if view is not None:
                yield view

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)
