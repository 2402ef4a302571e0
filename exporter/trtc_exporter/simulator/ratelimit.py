"""Sliding one-second windows: the per-(SecretId, action) limit and the peak-rate evidence.

Two different questions share this code. The limiter decides whether a request is admitted; the
peak tracker remembers the largest number of requests that ever fell into one sliding window, which
is what tests use to prove a client never sent more than its budget, whatever the limiter did.

Windows are half-open, ``(t - window, t]``: two requests exactly one window apart never share it.
The maximum over *all* sliding windows is always reached by a window that ends at an arrival, so
checking the windows that end at arrivals is exact.

Arrival times are the instants requests reached the server (the HTTP front passes the kernel's
receive timestamp, see ``arrival.py``), and the threads that handle them may run in any order: a
request stamped at 0.10 s may be decided after one stamped at 0.15 s. Each window therefore keeps
its times sorted and a decision looks at *every* window that contains the new arrival — the one
ending at it and those ending at later arrivals already decided. So traffic that never has more
than ``limit`` arrivals in any sliding window is never throttled, however late its handlers ran.

Throttled requests and the window (a documented choice): the real API's message counts every
request of the second ("Your current request times equals to `21`"), and our message does too.
Admission, by default, counts only admitted requests, so exactly ``limit`` requests succeed in any
sliding window and a client sending a steady 21/s still gets 20/s through, as with the real
per-second counter. ``count_throttled=True`` selects the stricter model of servers that count
rejected requests against the window too: a client that keeps sending above the limit keeps being
refused until it slows down (issue 15 item 12 reproduces an AIMD problem with it).
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass

Key = tuple[str, str]
"""(SecretId, action) — Tencent limits each account's each action separately."""

KEEP_WINDOWS = 10
"""Arrivals are kept this many windows behind the newest one, so a decision made that late (a
thread starved of the GIL) still sees every arrival it shares a window with."""


class _Window:
    """Arrival times of one key, ascending, pruned to ``KEEP_WINDOWS`` windows behind the newest."""

    __slots__ = ("times",)

    def __init__(self) -> None:
        self.times: list[float] = []

    def insert(self, t: float, window: float) -> None:
        """Add an arrival at its own time (not necessarily the newest) and prune old ones."""
        bisect.insort(self.times, t)
        horizon = self.times[-1] - KEEP_WINDOWS * window
        if self.times[0] <= horizon:
            del self.times[: bisect.bisect_right(self.times, horizon)]

    def count(self, start: float, end: float) -> int:
        """Arrivals in the half-open interval ``(start, end]``."""
        times = self.times
        return bisect.bisect_right(times, end) - bisect.bisect_right(times, start)

    def busiest_containing(self, t: float, window: float) -> int:
        """Most arrivals (``t`` not counted unless already inserted) in any window holding ``t``.

        Candidate windows end at ``t`` or at a later arrival less than one window after it.
        """
        times = self.times
        best = self.count(t - window, t)
        first = bisect.bisect_right(times, t)
        last = bisect.bisect_left(times, t + window)
        for end in times[first:last]:
            best = max(best, self.count(end - window, end))
        return best


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
        """Count an arrival; returns the most arrivals (it included) of a window containing it."""
        with self._lock:
            win = self._windows.setdefault(key, _Window())
            win.insert(now, self._window)
            count = win.busiest_containing(now, self._window)
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
        self._rejected: Counter[Key] = Counter()

    def admit(self, key: Key, now: float, limit: int) -> Decision:
        """Decide one request arriving at ``now`` under ``limit`` requests per window."""
        with self._lock:
            everyone = self._all.setdefault(key, _Window())
            admitted = self._admitted.setdefault(key, _Window())
            basis = everyone if self.count_throttled else admitted
            busiest = basis.busiest_containing(now, self.window)
            everyone.insert(now, self.window)
            seen = everyone.count(now - self.window, now)
            if busiest >= limit:
                self._rejected[key] += 1
                return Decision(allowed=False, seen=seen)
            admitted.insert(now, self.window)
        self._admitted_peaks.record(key, now)
        return Decision(allowed=True, seen=seen)

    def set_count_throttled(self, value: bool) -> None:
        """Switch the model at runtime (``POST /_sim/throttling``)."""
        with self._lock:
            self.count_throttled = value

    def admitted_peaks(self) -> dict[Key, int]:
        """Largest number of admitted requests in any sliding window, per key."""
        return self._admitted_peaks.peaks()

    def rejected(self) -> dict[Key, int]:
        """Requests this limiter refused since the last ``reset_peaks``, per key."""
        with self._lock:
            return dict(self._rejected)

    def reset_peaks(self) -> None:
        """Start a new measurement (peaks, rejections) without forgetting the window's requests."""
        self._admitted_peaks.reset()
        with self._lock:
            self._rejected.clear()
