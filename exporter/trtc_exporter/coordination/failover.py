"""A limiter that uses the shared one while Redis answers and a local static share otherwise.

Same public shape as ``budget.RateLimiter``. On a Redis error (or while Redis is down) requests
are granted by a local ``RateLimiter`` at ``configured / N`` (N: live members at the last
heartbeat), so N replicas that all lost Redis stay within the limit together. Both transitions
keep one span (1 s + guard) between the last grant of one mode and the first of the other:

* going down: the first local grant waits one span after the failure, so it never shares a
  window with grants the shared limiter made before Redis went away, and one span after this
  replica's heartbeat entry expires (:attr:`Link.lease_end`): until then the other members, if
  they still reach Redis, count it as live and share the whole limit between themselves, and
  only from then on hold its share back (``limiter.share_now``), the share it now spends alone;
* coming back: no local grant is made once the link is up again (a thread that got a local
  token after the rejoin drops it unused and takes the shared path), and the shared limiter is
  used only one span after the rejoin (:meth:`Link.settled_in`); the coordinator heartbeats
  only then too, so the members that start counting this replica as live (and give it its
  share of the shared window) never overlap its local grants. Until the other members have
  heartbeated again, :meth:`Link.share` keeps this replica to its proportion of the shared
  rate.

The reverse direction (a replica cut off while others still reach Redis) is covered by the
wait for the lease above and by the shared limiter holding back the share of members whose
heartbeats lapsed recently (for ``membership.LAPSE``; see :mod:`limiter`).
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext

import redis

from trtc_exporter.api.budget import AimdPolicy, Cancelled, Grant, RateLimiter
from trtc_exporter.clock import Clock
from trtc_exporter.coordination.limiter import SharedRateLimiter
from trtc_exporter.coordination.link import Link

LEASE_SLICE = 0.25  # seconds between probes while waiting for this replica's lease to end


class FailoverLimiter:
    """Shared limiter with a local fallback; thread-safe; never raises a Redis error."""

    def __init__(self, shared: SharedRateLimiter, link: Link, clock: Clock,
                 guard: float = 0.02, window: float = 1.0,
                 policy: AimdPolicy | None = None, confirm_sends: bool = False) -> None:
        """``confirm_sends``: the local fallback counts starts from their writes too (the
        shared limiter is built with the same choice)."""
        self.name = shared.name
        self._shared = shared
        self._link = link
        self._clock = clock
        self._span = window + guard
        self._local = RateLimiter(shared.configured_rate, clock, guard, window, policy,
                                  name=shared.name, confirm_sends=confirm_sends)

    @property
    def configured_rate(self) -> float:
        """The lane's configured rate in requests/s (the same shared or local)."""
        return self._shared.configured_rate

    def set_configured_rate(self, rate: float) -> None:
        """Apply a new configured rate (reload) to the shared limiter and to the local fallback's
        share."""
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
        event = cancel or threading.Event()
        while True:
            if self._link.usable():
                try:
                    self._shared_acquire(event)
                    break
                except redis.RedisError as exc:
                    self._link.failed(exc)
            if self._local_acquire(event):
                break
        return max(0.0, self._clock.monotonic() - started)

    def _shared_acquire(self, event: threading.Event) -> None:
        pause = self._link.settled_in()
        if pause > 0 and self._clock.wait(event, pause):
            raise Cancelled
        self._shared.set_share(self._link.share())
        self._shared.acquire(event)

    def _local_acquire(self, event: threading.Event) -> bool:
        """A local grant; False (no grant, or the token dropped unused) when Redis came back
        meanwhile. The wait for the lease is cut in slices: a Redis back within it is found by
        the probe (:meth:`Link.usable`) instead of after the whole heartbeat TTL."""
        while (lease := self._link.lease_end + self._span - self._clock.monotonic()) > 0:
            if self._clock.wait(event, min(lease, LEASE_SLICE)):
                raise Cancelled
            if self._link.usable():
                return False
        pause = self._link.down_since + self._span - self._clock.monotonic()
        if pause > 0 and self._clock.wait(event, pause):
            raise Cancelled
        self._local_share().acquire(event)
        return not self._link.up

    def grant_ahead(self) -> None:
        """None: a shared start is granted only to the thread that sends it (the Redis script
        records that thread's write report), so the poller's worker acquires it itself."""
        return None

    def free_in(self) -> None:
        """None: see :meth:`grant_ahead`."""
        return None

    def ahead(self, grant: Grant, waited: float) -> AbstractContextManager[None]:
        """Nothing to take: :meth:`grant_ahead` never grants (the Limiter protocol's seam)."""
        return nullcontext()

    def sent(self) -> None:
        """The calling thread's request was written: told to whichever limiter granted it (each
        ignores it when it granted nothing). Never raises: it runs inside the HTTP write, and a
        report lost with Redis leaves the shared start counted until its deadline."""
        self._local.sent()
        try:
            self._shared.sent()
        except redis.RedisError as exc:
            self._link.failed(exc)

    def on_accepted(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (monotonic s) was accepted: measured in the shared
        state while Redis answers (all replicas' requests), else by the local share."""
        if self._link.up:
            try:
                self._shared.on_accepted(sent_at)
                return
            except redis.RedisError as exc:
                self._link.failed(exc)
        self._local_share().on_accepted(sent_at)

    def on_throttled(self, limit_hint: int | None = None, marginal: bool = False,
                     sent_at: float | None = None) -> bool:
        """Report a throttle to the shared limiter, or to the local fallback while Redis is down."""
        if self._link.up:
            try:
                return self._shared.on_throttled(limit_hint, marginal, sent_at=sent_at)
            except redis.RedisError as exc:
                self._link.failed(exc)
        return self._local_share().on_throttled(limit_hint, marginal, sent_at=sent_at)

    @property
    def effective_rate(self) -> float:
        """The shared limiter's current rate (requests/s), or the local share's while Redis is
        down."""
        if self._link.up:
            try:
                return self._shared.effective_rate
            except redis.RedisError as exc:
                self._link.failed(exc)
        return self._local_share().effective_rate

    @property
    def guard(self) -> float:
        """The window guard (s) of whichever limiter is in use."""
        return self._shared.guard if self._link.up else self._local.guard
