"""Logs API failures by kind, so a broken key or region is visible without flooding the log.

A kind is (code, action, region). Its first failure is logged at warning with the target, the
RequestId and the API's message; other targets joining it get one line each while a token
bucket allows (the rest are counted); while it lasts, one summary per ``summary_every`` says how
many targets fail with it; when no target fails with it any more, one info line says it cleared.
Start lines have their own bucket, so a kind that flaps cannot flood the log either. Nothing here
sees credentials: the lines carry the code, action, region, target, RequestId and message only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from trtc_exporter.clock import Clock
from trtc_exporter.errors import counted
from trtc_exporter.response import NOT_FOUND_CODES, ApiFailure, TaskStatus, bounded_code
from trtc_exporter.target import Target

log = logging.getLogger("trtc_exporter.api_errors")
Kind = tuple[str, str, str]  # (bounded code, action, region): a bounded set of keys
MESSAGE_CHARS = 200
QUIET_CODES = NOT_FOUND_CODES | {"Cancelled"}  # answers or shutdown, not failures to report


class TokenBucket:
    """``burst`` tokens, refilled at ``per_second``; ``take`` is False when empty."""

    def __init__(self, clock: Clock, burst: float, per_second: float) -> None:
        self._clock = clock
        self._burst = burst
        self._rate = per_second
        self._tokens = burst
        self._at = clock.monotonic()

    def take(self) -> bool:
        """Take one token: True when one was left (refilled by the time since the last call)."""
        now = self._clock.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


@dataclass(slots=True)
class _Failing:
    """One kind while some target fails with it."""

    code: str
    since: float
    last_summary: float
    announced: bool
    targets: set[tuple[str, ...]] = field(default_factory=set)
    polls: int = 0
    suppressed: int = 0


class FailureLog:
    """Watches every poll's result (:meth:`observe`) and logs failure kinds as they start, last
    and clear. Times are the clock's monotonic seconds; thread-safe."""

    def __init__(self, clock: Clock, *, summary_every: float = 60.0, target_burst: float = 10,
                 target_per_second: float = 0.2, start_burst: float = 20,
                 start_per_second: float = 1 / 30) -> None:
        self._clock = clock
        self._summary_every = summary_every
        self._lock = threading.Lock()
        self._kinds: dict[Kind, _Failing] = {}
        self._kind_of: dict[tuple[str, ...], Kind] = {}
        self._target_lines = TokenBucket(clock, target_burst, target_per_second)
        self._start_lines = TokenBucket(clock, start_burst, start_per_second)

    def observe(self, target: Target, result: TaskStatus | ApiFailure) -> None:
        """Account one poll's result of ``target``; logs what changed."""
        failed = isinstance(result, ApiFailure) and result.code not in QUIET_CODES
        with self._lock:
            now = self._clock.monotonic()
            before = self._kind_of.get(target.key)
            if isinstance(result, ApiFailure) and failed:
                kind = (bounded_code(result.code), target.action, target.region)
                if before != kind:
                    self._leave(target.key, now)
                    self._join(kind, target, result, now)
                self._kinds[kind].polls += 1
            elif before is not None:
                self._leave(target.key, now)
            self._summarise(now)

    def retain(self, keys: Iterable[tuple[str, ...]]) -> None:
        """Forget targets that are no longer polled (a kind they alone kept alive clears)."""
        wanted = set(keys)
        with self._lock:
            now = self._clock.monotonic()
            for key in [k for k in self._kind_of if k not in wanted]:
                self._leave(key, now)

    def forget(self, keys: Iterable[tuple[str, ...]]) -> None:
        """Forget these targets (removed one by one: :meth:`retain` without the whole set)."""
        with self._lock:
            now = self._clock.monotonic()
            for key in keys:
                self._leave(key, now)

    def failing(self) -> dict[Kind, int]:
        """Targets failing per kind right now."""
        with self._lock:
            return {kind: len(f.targets) for kind, f in self._kinds.items()}

    def _join(self, kind: Kind, target: Target, failure: ApiFailure, now: float) -> None:
        self._kind_of[target.key] = kind
        current = self._kinds.get(kind)
        if current is None:
            announced = self._start_lines.take()
            current = self._kinds[kind] = _Failing(failure.code, now, now, announced)
            if announced:
                log.warning("API error started: code=%s action=%s region=%s target=%s "
                            "request_id=%s message=%s", failure.code, kind[1], kind[2],
                            target.describe(), failure.request_id or "-", _short(failure))
        elif self._target_lines.take():
            log.warning("API error %s also for %s (action=%s region=%s request_id=%s)",
                        failure.code, target.describe(), kind[1], kind[2],
                        failure.request_id or "-")
        else:
            current.suppressed += 1
        current.targets.add(target.key)

    def _leave(self, key: tuple[str, ...], now: float) -> None:
        kind = self._kind_of.pop(key, None)
        if kind is None:
            return
        current = self._kinds[kind]
        current.targets.discard(key)
        if current.targets:
            return
        del self._kinds[kind]
        if current.announced:
            log.info("API error cleared: code=%s action=%s region=%s after %.0fs, %d failed "
                     "polls", current.code, kind[1], kind[2], now - current.since,
                     current.polls)

    def _summarise(self, now: float) -> None:
        for kind, current in self._kinds.items():
            if now - current.last_summary < self._summary_every:
                continue
            current.last_summary = now
            log.warning("%s failing with %s (action=%s region=%s) for %.0fs: %d failed "
                        "polls, %d per-target lines suppressed",
                        counted(len(current.targets), "target"),
                        current.code, kind[1], kind[2], now - current.since, current.polls,
                        current.suppressed)
            current.suppressed = 0


def _short(failure: ApiFailure) -> str:
    """The API's message, quoted, on one line and at most MESSAGE_CHARS long."""
    text = " ".join(failure.message.split())
    if len(text) > MESSAGE_CHARS:
        text = text[:MESSAGE_CHARS] + "…"
    return repr(text)
