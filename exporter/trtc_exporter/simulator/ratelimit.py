"""Sliding one-second windows: the per-(SecretId, action) limit and the peak-rate evidence.

Two different questions share this code. The limiter decides whether a request is admitted; the
peak tracker remembers the largest number of requests that ever fell into one sliding window, which
is what tests use to prove a client never sent more than its budget, whatever the limiter did.

Windows are half-open, ``(t - window, t]``: two requests exactly one window apart never share it.
The maximum over *all* sliding windows is always reached by a window that ends at an arrival, so
counting at each arrival is exact.

Throttled requests and the window (a documented choice): the real API's message counts every
request of the second ("Your current request times equals to `21`"), and our message does too.
Admission, by default, counts only admitted requests, so exactly ``limit`` requests succeed in any
sliding window and a client sending a steady 21/s still gets 20/s through, as with the real
per-second counter. A sliding window that also counted rejections would lock such a client out
forever, which the real API does not do; ``count_throttled=True`` selects that stricter model.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

Key = tuple[str, str]
"""(SecretId, action) — Tencent limits each account's each action separately."""


class _Window:
    """Arrival times within the last window, oldest first."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: deque[float] = deque()

    def count_at(self, now: float, window: float) -> int:
        """Drop arrivals that left the window ending at ``now`` and count the rest."""
        times = self.times
        while times and times[0] <= now - window:
            times.popleft()
        return len(times)

    def add(self, now: float) -> float:
        """Append an arrival, clamped to keep the deque sorted when threads race by microseconds."""
        t = max(now, self.times[-1]) if self.times else now
        self.times.append(t)
        return t


@dataclass(frozen=True, slots=True)
class Decision:
    """The limiter's verdict and the request count the error message reports."""

    allowed: bool
    seen: int


class PeakTracker:
    """Largest number of arrivals seen in any sliding window, per key."""

    def __init__(self, window: float = 1.0) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._windows: dict[Key, _Window] = {}
        self._peaks: dict[Key, int] = {}

    def record(self, key: Key, now: float) -> int:
        """Count an arrival; returns how many arrivals (this one included) share its window."""
        with self._lock:
            win = self._windows.setdefault(key, _Window())
            t = win.add(now)
            count = win.count_at(t, self._window)
            if count > self._peaks.get(key, 0):
                self._peaks[key] = count
            return count

    def peaks(self) -> dict[Key, int]:
        """Copy of the peak per key."""
        with self._lock:
            return dict(self._peaks)

    def reset(self) -> None:
        """Forget peaks and windows (a new measurement starts from zero)."""
        with self._lock:
            self._windows.clear()
            self._peaks.clear()


class RateLimiter:
    """Admits at most ``limit`` requests per key in any sliding window."""

    def __init__(self, window: float = 1.0, count_throttled: bool = False) -> None:
        self.window = window
        self.count_throttled = count_throttled
        self._lock = threading.Lock()
        self._all: dict[Key, _Window] = {}
        self._admitted: dict[Key, _Window] = {}
        self._admitted_peaks = PeakTracker(window)

    def admit(self, key: Key, now: float, limit: int) -> Decision:
        """Decide one request arriving at ``now`` under ``limit`` requests per window."""
        with self._lock:
            everyone = self._all.setdefault(key, _Window())
            admitted = self._admitted.setdefault(key, _Window())
            t = everyone.add(now)
            seen = everyone.count_at(t, self.window)
            basis = seen - 1 if self.count_throttled else admitted.count_at(t, self.window)
            if basis >= limit:
                return Decision(allowed=False, seen=seen)
            admitted.add(t)
            self._admitted_peaks.record(key, t)
            return Decision(allowed=True, seen=seen)

    def admitted_peaks(self) -> dict[Key, int]:
        """Largest number of admitted requests in any sliding window, per key."""
        return self._admitted_peaks.peaks()

    def reset_peaks(self) -> None:
        """Start a new peak measurement without forgetting the requests still in the window."""
        self._admitted_peaks.reset()
