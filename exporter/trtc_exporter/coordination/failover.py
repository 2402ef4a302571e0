"""A limiter that uses the shared one while Redis answers and a local static share otherwise.

Same public shape as ``budget.RateLimiter``. On a Redis error (or while Redis is down) requests
are granted by a local ``RateLimiter`` at ``configured / N`` (N: live members at the last
heartbeat), so N replicas that all lost Redis stay within the limit together. Two transitions
are kept strict:

* going down: the first local grant waits one span (1 s + guard) after the failure, so it never
  shares a window with grants the shared limiter made before Redis went away;
* coming back: the starts granted locally during the last span are recorded in the shared window
  (``record_offline``), and :meth:`Link.share` keeps this replica to its proportion of the shared
  rate until the other members have heartbeated again.

Known limit: a replica cut off from Redis while the others still reach it spends its fallback
share on top of the shared limit; the AIMD cut on RequestLimitExceeded then lowers the rate.
"""

from __future__ import annotations

import threading
from collections import deque

import redis

from trtc_exporter.api.budget import AimdPolicy, Cancelled, RateLimiter
from trtc_exporter.clock import Clock
from trtc_exporter.coordination.limiter import SharedRateLimiter
from trtc_exporter.coordination.link import Link


class FailoverLimiter:
    """Shared limiter with a local fallback; thread-safe; never raises a Redis error."""

    def __init__(self, shared: SharedRateLimiter, link: Link, clock: Clock,
                 guard: float = 0.02, window: float = 1.0,
                 policy: AimdPolicy | None = None) -> None:
        self.name = shared.name
        self._shared = shared
        self._link = link
        self._clock = clock
        self._span = window + guard
        self._local = RateLimiter(shared.configured_rate, clock, guard, window, policy,
                                  name=shared.name)
        self._lock = threading.Lock()
        self._offline: deque[float] = deque()  # monotonic times of local grants

    @property
    def configured_rate(self) -> float:
        return self._shared.configured_rate

    def set_configured_rate(self, rate: float) -> None:
        self._shared.set_configured_rate(rate)
        self._local_share()

    def _local_share(self) -> RateLimiter:
        rate = self._shared.configured_rate / max(1, self._link.known_members)
        if abs(self._local.configured_rate - rate) > 1e-9:
            self._local.set_configured_rate(rate)
        return self._local

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until a start is granted (shared, or local fallback); returns the wait (s)."""
        started = self._clock.monotonic()
        if self._link.usable():
            try:
                self._replay_offline()
                self._shared.set_share(self._link.share())
                return self._shared.acquire(cancel)
            except redis.RedisError as exc:
                self._link.failed(exc)
        self._local_acquire(cancel)
        return max(0.0, self._clock.monotonic() - started)

    def _local_acquire(self, cancel: threading.Event | None) -> None:
        event = cancel or threading.Event()
        quiet_until = self._link.down_since + self._span
        pause = quiet_until - self._clock.monotonic()
        if pause > 0 and self._clock.wait(event, pause):
            raise Cancelled
        self._local_share().acquire(cancel)
        now = self._clock.monotonic()
        with self._lock:
            self._offline.append(now)
            while self._offline and self._offline[0] < now - self._span:
                self._offline.popleft()

    def _replay_offline(self) -> None:
        now = self._clock.monotonic()
        with self._lock:
            ages = [now - t for t in self._offline if now - t < self._span]
            self._offline.clear()
        if ages:
            self._shared.record_offline(ages)

    def on_throttled(self, limit_hint: int | None = None, marginal: bool = False) -> bool:
        if self._link.up:
            try:
                return self._shared.on_throttled(limit_hint, marginal)
            except redis.RedisError as exc:
                self._link.failed(exc)
        return self._local_share().on_throttled(limit_hint, marginal)

    @property
    def effective_rate(self) -> float:
        if self._link.up:
            try:
                return self._shared.effective_rate
            except redis.RedisError as exc:
                self._link.failed(exc)
        return self._local_share().effective_rate

    @property
    def guard(self) -> float:
        return self._shared.guard if self._link.up else self._local.guard
