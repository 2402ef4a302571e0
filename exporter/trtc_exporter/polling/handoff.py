"""One lane's hand-off of due targets from the dispatcher to its workers, most recently idle
worker first.

A ``queue.Queue`` wakes its waiting workers in turn (first come, first served): at 20 requests/s
with 30 workers per lane each request then ran on a thread that had slept for 1.5 s, its stack
and frames long out of the CPU's caches. Here an idle worker parks on its own ``SimpleQueue`` (a
C-level hand-off: no Condition, no notify) and the dispatcher hands the next target to the worker
that went idle last, so the few workers a paced lane needs stay warm and the rest sleep
(docs/performance.md, "Goal 4, fourth round").
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    """Items (``None`` stops one worker) handed to waiting workers, last-idle first; items that
    find no idle worker wait in arrival order for the next worker to finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: deque[T | None] = deque()
        self._idle: list[queue.SimpleQueue[T | None]] = []  # a stack: last idle on top

    @property
    def idle(self) -> int:
        """How many workers are waiting for an item."""
        with self._lock:
            return len(self._idle)

    def put(self, item: T | None) -> None:
        """Give ``item`` to the most recently idle worker, or queue it when all are busy."""
        with self._lock:
            if not self._idle:
                self._pending.append(item)
                return
            worker = self._idle.pop()
        worker.put(item)

    def get(self, slot: queue.SimpleQueue[T | None]) -> T | None:
        """The next item for the worker owning ``slot`` (its own, reused between calls): a
        queued one at once, else block until the dispatcher hands one over."""
        with self._lock:
            if self._pending:
                return self._pending.popleft()
            self._idle.append(slot)
        return slot.get()
