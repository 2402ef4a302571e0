"""What the simulator served, kept as evidence for tests and benchmarks.

The headline number is ``max_in_window``: the most requests that arrived for one (SecretId,
action) within any sliding one-second window, counted at arrival, before authentication, faults or
throttling. It measures the client's sending rate, so "never above 20" proves the client kept its
budget. ``max_admitted_in_window`` (from the limiter) is bounded by the limit by construction.
Arrivals are stamped when they reached the server (the kernel's receive time, see ``arrival.py``);
``arrival_stamps`` counts how many had a kernel stamp and how many fell back to the handler's
clock; ``arrival_lag_seconds`` (max and mean) is how long after its arrival a request's handler
got to decide it — the error a handler-clock stamp would have had. ``throttled`` counts the
limiter's own RequestLimitExceeded answers (a ``request_limit_storm`` fault's are not included:
they are in ``by_code``).
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any

from trtc_exporter.simulator.ratelimit import Key, PeakTracker

PER_SECOND_KEPT = 3600
"""Seconds of per-second history kept per action (bounded memory on long demo runs)."""


class Stats:
    """Thread-safe counters; ``reset`` starts a new measurement."""

    def __init__(self, window: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._peaks = PeakTracker(window)
        self._codes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._per_second: defaultdict[str, Counter[int]] = defaultdict(Counter)
        self._total = 0
        self._since: float | None = None
        self._stamps: Counter[str] = Counter()
        self._lag_max = 0.0
        self._lag_sum = 0.0

    def arrival(self, key: Key, monotonic_now: float, wall_now: float, lag: float = 0.0) -> None:
        """Count one API request as it arrives (before any check); ``lag``: seconds until now."""
        self._peaks.record(key, monotonic_now)
        second = int(wall_now)
        with self._lock:
            self._total += 1
            self._lag_max = max(self._lag_max, lag)
            self._lag_sum += lag
            if self._since is None:
                self._since = wall_now
            seconds = self._per_second[key[1]]
            seconds[second] += 1
            if len(seconds) > PER_SECOND_KEPT:
                for old in sorted(seconds)[: len(seconds) - PER_SECOND_KEPT]:
                    del seconds[old]

    def stamped(self, source: str) -> None:
        """Count where an arrival time came from: ``kernel`` or ``handler``."""
        with self._lock:
            self._stamps[source] += 1

    def served(self, action: str, code: str) -> None:
        """Count what was answered: ``Success``, an ``Error.Code`` or a transport fault name."""
        with self._lock:
            self._codes[action][code] += 1

    def reset(self) -> None:
        """Start a new measurement: counters, per-second counts, lag and peaks back to zero."""
        with self._lock:
            self._codes.clear()
            self._per_second.clear()
            self._total = 0
            self._since = None
            self._stamps.clear()
            self._lag_max = self._lag_sum = 0.0
        self._peaks.reset()

    def to_json(
        self,
        admitted_peaks: dict[Key, int],
        limits: dict[str, int],
        throttled: dict[Key, int] | None = None,
    ) -> dict[str, Any]:
        """The ``GET /_sim/stats`` document; ``throttled`` is the limiter's refusals per key."""
        throttled = throttled or {}
        peaks = self._peaks.peaks()
        with self._lock:
            by_action = {a: dict(c) for a, c in sorted(self._codes.items())}
            by_code: Counter[str] = Counter()
            for counter in self._codes.values():
                by_code.update(counter)
            per_second = {
                a: {str(s): n for s, n in sorted(c.items())}
                for a, c in sorted(self._per_second.items())
            }
            total, since, stamps = self._total, self._since, dict(self._stamps)
            lag = {"max": round(self._lag_max, 6),
                   "mean": round(self._lag_sum / total, 6) if total else 0.0}  # fmt: skip
        windows = [
            {
                "secret_id": sid,
                "action": action,
                "max_in_window": peaks.get((sid, action), 0),
                "max_admitted_in_window": admitted_peaks.get((sid, action), 0),
                "limit": limits.get(action),
                "throttled": throttled.get((sid, action), 0),
            }
            for sid, action in sorted(set(peaks) | set(admitted_peaks))
        ]
        return {
            "requests_total": total,
            "since": since,
            "by_action": by_action,
            "by_code": dict(sorted(by_code.items())),
            "per_second": per_second,
            "windows": windows,
            "max_in_window": max((peaks.get(k, 0) for k in peaks), default=0),
            "throttled_total": sum(throttled.values()),
            "arrival_stamps": stamps,
            "arrival_lag_seconds": lag,
        }
