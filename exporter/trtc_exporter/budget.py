"""The request budget: a strict sliding-window limiter per API action, with AIMD adaptation.

Tencent limits each account to N requests per second per action, counted by the server. We keep
two rules at once: no N+1 grants within ``1 s + guard`` (so network jitter cannot push the server's
count over N), and at least ``1/rate`` between grants (so traffic is smooth, not bursts). Grants
are reservations of a future instant, taken under a lock and slept on outside it, which makes
waiting first-come first-served and lets tests compute schedules without threads.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from dataclasses import dataclass

from trtc_exporter.clock import Clock

_LIMIT_HINT = re.compile(r"(?:frequency limit|上限)\s*`(\d+)`")


def limit_from_message(message: str) -> int | None:
    """The per-second limit the API states in a RequestLimitExceeded message, if any."""
    match = _LIMIT_HINT.search(message)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class AimdPolicy:
    """Multiplicative decrease on throttling, additive increase while quiet."""

    decrease: float = 0.7
    increase_per_second: float = 1.0
    cooldown: float = 2.0
    ceiling_margin: float = 0.9
    ceiling_memory: float = 30.0
    floor_fraction: float = 0.05


class RateLimiter:
    """Thread-safe limiter for one action; ``acquire`` blocks until a request may start."""

    def __init__(self, rate: float, clock: Clock, guard: float = 0.02, window: float = 1.0,
                 policy: AimdPolicy | None = None, name: str = "") -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.name = name
        self.configured_rate = rate
        self._rate = rate
        self._clock = clock
        self._guard = guard
        self._window = window
        self._policy = policy or AimdPolicy()
        self._lock = threading.Lock()
        self._grants: deque[float] = deque()
        self._ceiling = rate
        self._cooldown_until = -math.inf
        self._last_adjust = clock.monotonic()
        self._last_throttle = -math.inf
        self.throttle_events = 0

    @property
    def effective_rate(self) -> float:
        with self._lock:
            self._recover(self._clock.monotonic())
            return self._rate

    def reserve(self) -> float:
        """Reserve the earliest allowed start instant; returns how long the caller must wait."""
        with self._lock:
            now = self._clock.monotonic()
            self._recover(now)
            slot = self._next_slot(now)
            self._grants.append(slot)
            return slot - now

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until our reserved slot; returns the wait. A cancelled wait still used its slot."""
        wait = self.reserve()
        if wait > 0:
            if cancel is None:
                self._clock.sleep(wait)
            else:
                self._clock.wait(cancel, wait)
        return max(0.0, wait)

    def _next_slot(self, now: float) -> float:
        per_window = max(1, math.floor(self._rate * self._window))
        span = per_window / self._rate + self._guard
        while self._grants and self._grants[0] <= now - span - self._window:
            self._grants.popleft()
        slot = now
        if self._grants:
            slot = max(slot, self._grants[-1] + 1.0 / self._rate)
        if len(self._grants) >= per_window:
            slot = max(slot, self._grants[-per_window] + span)
        return slot

    def on_throttled(self, limit_hint: int | None = None) -> bool:
        """Cut the rate after a RequestLimitExceeded; False when still cooling down from a cut."""
        with self._lock:
            now = self._clock.monotonic()
            self._last_throttle = now
            self.throttle_events += 1
            if now < self._cooldown_until:
                return False
            before = self._rate
            floor = self.configured_rate * self._policy.floor_fraction
            if limit_hint is not None and 0 < limit_hint < before:
                self._rate = max(floor, float(limit_hint))
                self._ceiling = self._rate
            else:
                self._rate = max(floor, before * self._policy.decrease)
                self._ceiling = max(self._rate, before * self._policy.ceiling_margin)
            self._cooldown_until = now + self._policy.cooldown
            self._last_adjust = now
            return True

    def _recover(self, now: float) -> None:
        """Additive increase: toward the learned ceiling, then, after a quiet spell, beyond it."""
        if self._rate >= self.configured_rate or now < self._cooldown_until:
            self._last_adjust = max(self._last_adjust, min(now, self._cooldown_until))
            return
        forget_at = self._last_throttle + self._policy.ceiling_memory
        if now >= forget_at and self._ceiling < self.configured_rate:
            self._ceiling = self.configured_rate
            self._last_adjust = max(self._last_adjust, forget_at)
        elapsed = now - self._last_adjust
        if elapsed <= 0 or self._rate >= self._ceiling:
            self._last_adjust = now
            return
        step = elapsed * self._policy.increase_per_second
        self._rate = min(self._ceiling, self._rate + step)
        self._last_adjust = now

    def set_configured_rate(self, rate: float) -> None:
        """Apply a new configured rate (reload); adaptive state restarts from it."""
        with self._lock:
            adapted = self._rate < self.configured_rate
            self.configured_rate = rate
            self._rate = min(self._rate, rate) if adapted else rate
            self._ceiling = rate


class Budget:
    """One limiter per API action: Tencent counts each action separately."""

    def __init__(self, rates: dict[str, float], clock: Clock, guard: float = 0.02,
                 policy: AimdPolicy | None = None) -> None:
        self._clock = clock
        self._guard = guard
        self._policy = policy
        self._limiters = {action: RateLimiter(rate, clock, guard, policy=policy, name=action)
                          for action, rate in rates.items()}

    def limiter(self, action: str) -> RateLimiter:
        return self._limiters[action]

    def items(self) -> list[tuple[str, RateLimiter]]:
        return sorted(self._limiters.items())

    def update(self, rates: dict[str, float]) -> None:
        for action, rate in rates.items():
            if action in self._limiters:
                self._limiters[action].set_configured_rate(rate)
            else:
                self._limiters[action] = RateLimiter(rate, self._clock, self._guard,
                                                     policy=self._policy, name=action)
