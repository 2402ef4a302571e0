"""The worker threads of one budget lane: a job goes to the worker that became idle last.

At full budget a lane has less than one request in flight on average (20 req/s at 20 ms), so
one or two workers do all the polling. Handing each job to the most recently idle worker (a
stack) keeps that worker's stack and thread state in the CPU caches; the FIFO queue before
woke the longest-idle of 30 workers in turn, each from cold memory (measured: 3 % less CPU per
request at full budget, docs/performance.md, issue 16 goal 5). Threads are started when a job
finds none idle, up to ``most``: an exporter polling a fast API runs a handful of threads, not
30 per lane. Beyond ``most`` busy workers, jobs wait in order for the next one to finish.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("trtc_exporter.scheduler")

J = TypeVar("J")


class _Slot(Generic[J]):
    """An idle worker's hand: ``ready`` is held until a job (or None: close) is put in it."""

    __slots__ = ("job", "ready")

    def __init__(self) -> None:
        self.job: J | None = None
        self.ready = threading.Lock()
        self.ready.acquire()


class Workers(Generic[J]):
    """Up to ``most`` threads named ``name-N`` running ``run(job)`` for each submitted job.

    Nothing runs before :meth:`start` (submitted jobs wait: tests drive a dispatcher without
    threads); :meth:`close` ends the threads once their current job is done and returns the
    jobs no worker took. ``run`` should not raise; if it does, the error is logged by type and
    the worker goes on.
    """

    def __init__(self, run: Callable[[J], None], most: int, name: str) -> None:
        self._run = run
        self._most = most
        self._name = name
        self._lock = threading.Lock()
        self._idle: list[_Slot[J]] = []  # the last to become idle is taken first
        self._queued: deque[J] = deque()
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False

    @property
    def threads(self) -> list[threading.Thread]:
        """The worker threads started so far."""
        with self._lock:
            return list(self._threads)

    def start(self) -> None:
        """Allow threads; the jobs already waiting get workers."""
        with self._lock:
            self._started = True
            for _ in range(min(len(self._queued), self._most)):
                self._spawn_locked()

    def submit(self, job: J) -> None:
        """Hand ``job`` to the most recently idle worker, else start one (up to ``most``),
        else queue it for the next worker that finishes. Ignored after :meth:`close`."""
        with self._lock:
            if self._closed:
                return
            if self._idle:
                slot = self._idle.pop()
                slot.job = job
                slot.ready.release()
                return
            self._queued.append(job)
            if self._started and len(self._threads) < self._most:
                self._spawn_locked()

    def take_queued(self) -> list[J]:
        """Remove and return the jobs no worker has taken yet, oldest first."""
        with self._lock:
            jobs = list(self._queued)
            self._queued.clear()
            return jobs

    def close(self) -> list[J]:
        """End every worker once its job is done; the jobs no worker took, oldest first."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            for slot in idle:
                slot.ready.release()  # no job: the worker ends
        return self.take_queued()

    def _spawn_locked(self) -> None:
        thread = threading.Thread(target=self._work, daemon=True,
                                  name=f"{self._name}-{len(self._threads)}")
        self._threads.append(thread)
        thread.start()

    def _work(self) -> None:
        slot: _Slot[J] = _Slot()
        while (job := self._next(slot)) is not None:
            try:
                self._run(job)
            except Exception as exc:  # a worker lost would be a lane's capacity lost
                log.error("a poll worker's job failed unexpectedly: %s", type(exc).__name__)

    def _next(self, slot: _Slot[J]) -> J | None:
        """The next job: a queued one, else wait idle in ``slot``; None once closed."""
        with self._lock:
            if self._queued and not self._closed:
                return self._queued.popleft()
            if self._closed:
                return None
            self._idle.append(slot)
        slot.ready.acquire()
        job, slot.job = slot.job, None
        return job
