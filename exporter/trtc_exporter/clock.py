"""Injectable time, so budget, scheduler and simulator can be tested without real sleeping.

``FakeClock`` ships in the package (like httpx's MockTransport): tests and the soak run drive time
by hand, and a sleeping thread wakes when another thread advances the clock.
"""

from __future__ import annotations

import threading
import time
from typing import NewType, Protocol

WallSeconds = NewType("WallSeconds", float)
"""Seconds since the Unix epoch (``time.time()``): timestamps shown to users and in metrics."""
MonoSeconds = NewType("MonoSeconds", float)
"""Seconds of a monotonic clock: only differences mean anything (intervals, deadlines, waits)."""


class Clock(Protocol):
    """Monotonic time for intervals and waits; wall time for timestamps shown to users."""

    def monotonic(self) -> MonoSeconds:
        """Seconds on a monotonic clock, for intervals and deadlines."""

    def time(self) -> WallSeconds:
        """Unix seconds (wall clock), for timestamps shown to people and Prometheus."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (nothing for <= 0)."""

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for the event or the timeout; True when the event is set."""
        ...


class SystemClock:
    """The real clocks of the machine."""

    def monotonic(self) -> MonoSeconds:
        """``time.monotonic()``."""
        return MonoSeconds(time.monotonic())

    def time(self) -> WallSeconds:
        """``time.time()``."""
        return WallSeconds(time.time())

    def sleep(self, seconds: float) -> None:
        """``time.sleep(seconds)`` when positive."""
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``event``; True when it was set."""
        return event.wait(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; sleepers wake when time reaches their deadline.

    With ``auto_advance`` every sleep moves time forward at once instead: single-threaded tests of
    code that backs off or waits for a token then run instantly and deterministically.
    """

    def __init__(self, start: float = 1_795_514_400.0, auto_advance: bool = False) -> None:
        self._now = start
        self._auto = auto_advance
        self._cond = threading.Condition()
        self._sleepers = 0

    def monotonic(self) -> MonoSeconds:
        """The fake's current instant (starts where the constructor put it, moves by
        ``advance``)."""
        with self._cond:
            return MonoSeconds(self._now)

    def time(self) -> WallSeconds:
        """The same fake instant as monotonic(): tests read one timeline."""
        return WallSeconds(self.monotonic())

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake sleepers whose deadline passed."""
        with self._cond:
            self._now += seconds
            self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        """Wait until fake time has moved ``seconds`` on (auto mode: advance it at once)."""
        if self._auto:
            self.advance(max(0.0, seconds))
            return
        with self._cond:
            deadline = self._now + seconds
            self._enter()
            try:
                while self._now < deadline:
                    self._cond.wait(0.05)
            finally:
                self._sleepers -= 1

    def wait(self, event: threading.Event, seconds: float) -> bool:
        """Wait for ``event`` until fake time has moved ``seconds`` on (auto mode: advance at
        once unless the event is set); True when the event was set."""
        if self._auto:
            if not event.is_set():
                self.advance(max(0.0, seconds))
            return event.is_set()
        with self._cond:
            deadline = self._now + seconds
            self._enter()
            try:
                while self._now < deadline:
                    if event.is_set():
                        return True
                    self._cond.wait(0.01)
            finally:
                self._sleepers -= 1
        return event.is_set()

    def _enter(self) -> None:
        self._sleepers += 1
        self._cond.notify_all()  # wakes await_sleepers

    def await_sleepers(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` threads sleep or wait on this clock (at most ``timeout`` real
        seconds); a test then advances time knowing the other thread is really waiting."""
        with self._cond:
            return self._cond.wait_for(lambda: self._sleepers >= count, timeout)


SYSTEM_CLOCK = SystemClock()
