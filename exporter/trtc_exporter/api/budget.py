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
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from trtc_exporter.clock import Clock

_LIMIT_HINT = re.compile(r"(?:frequency limit|上限)\s*`(\d+)`")
_COUNT_HINT = re.compile(r"(?:equals to|每秒请求)\s*`(\d+)`")
MAX_GUARD = 0.1
ANCHOR_POLL = 0.002  # how often a grant re-checks an anchor that has not started yet
LATE_TOLERANCE = 0.5  # spacings: a grant asked for this late keeps the plan (_next_grant)


@dataclass(frozen=True, slots=True)
class ThrottleHint:
    """What a RequestLimitExceeded message says: the limit, and how many requests it counted."""

    limit: int | None = None
    seen: int | None = None

    @property
    def marginal(self) -> bool:
        """One request over the limit: our own timing jitter, not someone else's traffic."""
        return self.limit is not None and self.seen is not None and self.seen <= self.limit + 1


def limit_from_message(message: str) -> int | None:
    """The per-second limit the API states in a RequestLimitExceeded message, if any."""
    return hint_from_message(message).limit


def hint_from_message(message: str) -> ThrottleHint:
    """Parse a RequestLimitExceeded message into a :class:`ThrottleHint` (stated limit and count,
    each None when the message does not state it, as a plain-worded message does not)."""
    limit, seen = _LIMIT_HINT.search(message), _COUNT_HINT.search(message)
    return ThrottleHint(int(limit.group(1)) if limit else None,
                        int(seen.group(1)) if seen else None)


@dataclass(frozen=True, slots=True)
class AimdPolicy:
    """Multiplicative decrease on throttling, additive increase while quiet.

    For a throttle that states no limit: ``hold`` seconds at the new rate before probing upward
    again, doubled (up to ``max_hold``) each time a probe is throttled; the new rate is at most
    ``accepted_margin`` times the requests the server accepted in the window before the throttle.
    Without a send time a throttle cuts by ``decrease``, remembers ``ceiling_margin`` of the old
    rate as a ceiling for ``ceiling_memory`` seconds, and ignores further throttles for
    ``cooldown`` seconds. The shared Redis limiter (``coordination.limiter``) mirrors both step
    by step.
    """

    decrease: float = 0.7
    increase_per_second: float = 1.0
    cooldown: float = 2.0
    ceiling_margin: float = 0.9
    ceiling_memory: float = 30.0
    floor_fraction: float = 0.05
    hold: float = 5.0
    max_hold: float = 20.0
    accepted_margin: float = 0.95


class Cancelled(Exception):
    """The wait for a token was cancelled (shutdown); the caller must not send."""


class Grant:
    """One reserved request start; ``anchor`` is the grant one window's worth of requests back."""

    __slots__ = ("anchor", "granted", "sent", "span", "started", "time")

    def __init__(self, time: float, anchor: Grant | None, span: float) -> None:
        self.time = time  # its start: the grant, then (confirming sends) the write
        self.granted = time  # its planned start: the next grant is spaced 1/rate after it
        self.anchor = anchor
        self.span = span
        self.started = False  # set when its request really starts (or its wait was cancelled)
        self.sent = True  # False from the grant until the request is written (confirm_sends)

    def earliest(self) -> float:
        """Our slot, or later if the anchor really started later than it was granted; unknown
        (inf) while the anchor has not started (or, confirming sends, not been written) yet,
        e.g. all threads paused by a long GIL hold."""
        if self.anchor is None:
            return self.time
        if not (self.anchor.started and self.anchor.sent):
            return math.inf
        return max(self.time, self.anchor.time + self.span)

    def start(self) -> None:
        """The request started (or its wait was cancelled): :meth:`earliest` is not asked
        again, so the anchor is let go. Kept, it chained every grant to the one a window back,
        and so every grant since start-up stayed in memory (about 150 B per request: 2 MB a
        minute at 250 req/s; issue 16, goal 3)."""
        self.started = True
        self.anchor = None


class RateLimiter:
    """Thread-safe limiter for one action; ``acquire`` blocks until a request may start.

    With ``confirm_sends`` a grant counts from the instant its request is written, reported by
    the granted thread through :meth:`sent` (or its next ``acquire``): the grant one window's
    worth of requests later waits for that report. A sender held up between its grant and its
    write (a saturated CPU, another thread holding the GIL) then pushes the later ones back
    instead of landing within a second of them, whatever the delay.
    """

    def __init__(self, rate: float, clock: Clock, guard: float = 0.02, window: float = 1.0,
                 policy: AimdPolicy | None = None, name: str = "",
                 confirm_sends: bool = False) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.name = name
        self.configured_rate = rate
        self._rate = rate
        self._clock = clock
        self._guard = guard
        self._base_guard = guard
        self._window = window
        self._policy = policy or AimdPolicy()
        self._lock = threading.Lock()
        self._grants: deque[Grant] = deque()
        self._ceiling = rate
        self._cooldown_until = -math.inf
        self._last_adjust: float = clock.monotonic()  # MonoSeconds, moved by arithmetic
        self._last_cut = -math.inf  # last rate decrease: the ceiling is remembered from it
        self._last_widen = -math.inf  # last guard widening: the guard resets after it
        self._last_reaction = -math.inf  # a throttle of a request sent before it is stale
        self._accepted: deque[float] = deque()  # send times of accepted requests
        self._paused_until = -math.inf
        self._good = rate  # the rate the last unstated-limit cut settled on
        self._hold = self._policy.hold
        self._confirm = confirm_sends
        self._unsent = threading.local()  # this thread's grant whose write is not reported yet
        self._ahead = threading.local()  # a grant handed to this thread for its next acquire

    @property
    def effective_rate(self) -> float:
        """The current (adaptive) rate in requests/s, at most the configured one."""
        with self._lock:
            self._recover(self._clock.monotonic())
            return self._rate

    def reserve(self) -> float:
        """Reserve the earliest allowed start instant, taken as the request's start; returns how
        long the caller must wait (for callers that plan starts rather than wait for them)."""
        grant, wait = self._reserve()
        grant.start()
        return wait

    def _reserve(self) -> tuple[Grant, float]:
        with self._lock:
            now = self._clock.monotonic()
            self._recover(now)
            grant = self._next_grant(now)
            self._grants.append(grant)
            return grant, grant.time - now

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until our slot, then until the window is really free; returns the wait.

        A thread may wake late (a loaded machine), so a grant's time becomes the instant its
        request really starts, and each grant re-checks the grant ``rate`` places before it:
        a late sender pushes later ones back instead of squeezing 21 requests into a second.
        A cancelled wait raises :class:`Cancelled`: its slot is spent, no request may follow.
        """
        self.sent()  # this thread's previous request, if unreported, is long written
        ahead: Grant | None = getattr(self._ahead, "grant", None)
        if ahead is not None:  # granted to a dispatcher for this thread (grant_ahead)
            self._ahead.grant = None
            if cancel is not None and cancel.is_set():  # stopping: no request may follow
                self._release(ahead)
                raise Cancelled
            if not self._paused_after(ahead):
                if self._confirm:
                    self._unsent.grant = ahead
                return float(self._ahead.waited)
        grant, wait = self._reserve()
        started = self._clock.monotonic()
        event = cancel or threading.Event()
        while True:
            if wait > 0 and self._clock.wait(event, min(wait, ANCHOR_POLL)
                                             if wait == math.inf else wait):
                with self._lock:
                    grant.start()  # never sent: later grants may count from its slot
                raise Cancelled
            with self._lock:
                now = self._clock.monotonic()
                wait = grant.earliest() - now
                if wait <= 1e-9:
                    self._begin(grant, now)
                    break
        if self._confirm:
            self._unsent.grant = grant
        return max(0.0, self._clock.monotonic() - started)

    def _paused_after(self, grant: Grant) -> bool:
        """Whether a throttle paused the limiter after ``grant`` was handed out (a grant ahead
        is never inside a pause) and the pause still runs: then the grant is released unused,
        counting from its grant time, and its sender reserves a slot behind the pause like the
        threads already waiting (:meth:`_pause`)."""
        with self._lock:
            paused = self._clock.monotonic() < self._paused_until
        if paused:
            self._release(grant)
        return paused

    def _release(self, grant: Grant) -> None:
        """A grant ahead whose request will never be sent: it counts from its grant time."""
        with self._lock:
            grant.sent = True

    def grant_ahead(self) -> Grant | float:
        """A start granted now, to a thread that hands its request to another (the poller's
        dispatcher): the sending thread takes it with :meth:`ahead`, so the sender never sleeps
        in :meth:`acquire` (one thread wake fewer per request: docs/performance.md). When the
        window allows no start now: the seconds until it could (as :meth:`free_in`), nothing
        reserved. Same rules as :meth:`acquire`: the grant counts from its request's write
        when confirming sends, and comes after the reservations of waiting threads."""
        with self._lock:
            now = self._clock.monotonic()
            grant, wait = self._peek(now)
            if wait > 0:
                return wait
            self._begin(grant, now)
            self._grants.append(grant)
            return grant

    def free_in(self) -> float:
        """Seconds until a start could be granted (0: now), reserving nothing; ``ANCHOR_POLL``
        while unknown (the grant a window back is not written yet)."""
        with self._lock:
            return self._peek(self._clock.monotonic())[1]

    def _begin(self, grant: Grant, now: float) -> None:
        """The grant starts now, or at its slot if that is later (its window counts from
        there); its planned start (``granted``, the next grant's spacing) stays. Confirming
        sends, it counts as unsent until its request's write is reported (:meth:`sent`)."""
        grant.time = max(grant.time, now)
        grant.start()
        grant.sent = not self._confirm

    def _peek(self, now: float) -> tuple[Grant, float]:
        self._recover(now)
        grant = self._next_grant(now)
        wait = grant.earliest() - now
        return grant, (ANCHOR_POLL if wait == math.inf else wait if wait > 1e-9 else 0.0)

    @contextmanager
    def ahead(self, grant: Grant, waited: float) -> Iterator[None]:
        """Within the block, this thread's next :meth:`acquire` takes ``grant`` (from
        :meth:`grant_ahead`) at once and returns ``waited`` (seconds the request waited for it).
        A grant not taken by the end of the block (the poll stopped before its request) is
        released: it counts from its grant time, so the grant a window later is not held up."""
        self._ahead.grant, self._ahead.waited = grant, waited
        try:
            yield
        finally:
            if getattr(self._ahead, "grant", None) is grant:
                self._ahead.grant = None
                self._release(grant)

    def sent(self) -> None:
        """The request this thread was last granted has been written (or will never be): its
        window counts from now. Without ``confirm_sends``, or nothing outstanding, a no-op."""
        grant = getattr(self._unsent, "grant", None)
        if grant is None:
            return
        self._unsent.grant = None
        with self._lock:
            grant.time = max(grant.time, self._clock.monotonic())
            grant.sent = True

    def _next_grant(self, now: float) -> Grant:
        per_window = max(1, math.floor(self._rate * self._window))
        span = per_window / self._rate + self._guard
        while (self._grants and self._grants[0].started and self._grants[0].sent
               and self._grants[0].time <= now - span - self._window):
            self._grants.popleft()
        plan = self._paused_until
        if self._grants:  # smoothness, planned from grants: a late write does not add up
            plan = max(plan, self._grants[-1].granted + 1.0 / self._rate)
        anchor = self._grants[-per_window] if len(self._grants) >= per_window else None
        if anchor is not None:
            plan = max(plan, anchor.time + span)
        grant = Grant(max(now, plan), anchor, span)
        if 0 < now - plan <= LATE_TOLERANCE / self._rate:
            # asked a little after its slot (a dispatcher woken late): the next grant is spaced
            # from the plan, so lateness does not add up; a longer gap restarts the plan
            grant.granted = plan
        return grant

    def on_accepted(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (monotonic s) was not throttled: the server's window
        accepted it. The count of the last window is what an unstated limit is cut to."""
        with self._lock:
            self._accepted.append(sent_at)
            while self._accepted and self._accepted[0] < sent_at - 2 * self._window:
                self._accepted.popleft()

    def on_throttled(self, limit_hint: int | None = None, marginal: bool = False,
                     sent_at: float | None = None) -> bool:
        """React to a RequestLimitExceeded; False when the signal is stale.

        The API's limit dropped below our rate: take it. One request over at our own rate:
        network or scheduling jitter, so widen the guard (doubling, up to 100 ms) instead of
        cutting the rate. Anything else (someone shares the quota, or a message that states no
        numbers): with ``sent_at`` (monotonic send time of the throttled request) see
        :meth:`_cut_unstated`, and a throttle of a request sent before our last reaction is
        stale (it reports the old rate); without it, a multiplicative cut and a fixed cool-down.
        """
        with self._lock:
            now = self._clock.monotonic()
            before = self._rate
            floor = self.configured_rate * self._policy.floor_fraction
            stale = (now < self._cooldown_until if sent_at is None
                     else sent_at < self._last_reaction)
            if limit_hint is not None and 0 < limit_hint < before:
                # the API's own word on its limit wins, even during a cool-down
                self._rate = max(floor, float(limit_hint))
                self._ceiling = self._rate
                self._last_cut = now
            elif stale:
                return False
            elif marginal and self._guard < MAX_GUARD:
                self._guard = min(MAX_GUARD, max(2 * self._guard, 0.01))
                self._last_widen = now
            elif sent_at is not None:
                self._cut_unstated(now, before, floor, sent_at)
                return True
            else:  # no send time: the plain cool-down AIMD
                self._last_cut = now
                self._rate = max(floor, before * self._policy.decrease)
                self._ceiling = max(self._rate, before * self._policy.ceiling_margin)
            self._cooldown_until = now + self._policy.cooldown
            self._last_adjust = self._last_reaction = now
            return True

    def _cut_unstated(self, now: float, before: float, floor: float, sent_at: float) -> None:
        """A throttle that tells us nothing about the limit. A server may count refused
        requests against its window too, so every request sent over the limit keeps it full:

        - cut: back to the last good rate when we were probing above it; else to what the
          server accepted in the window before the throttled request (times a margin, and at
          least that margin below the current rate), or multiplicatively when that is unknown;
        - pause one window, so the server's window drains of our refused requests (requests
          already waiting for a token are moved behind the pause, spaced at the new rate);
        - hold the new rate before probing upward again (additive increase), the hold doubling
          each time a probe is throttled, so probing costs few throttles once the limit is found.
        """
        probing = before > self._good + 1e-9
        margin = self._policy.accepted_margin
        accepted = sum(1 for t in self._accepted if sent_at - self._window < t <= sent_at)
        if probing:
            target = self._good
        elif accepted:
            target = min(before, accepted / self._window) * margin
        else:
            target = before * self._policy.decrease
        self._rate = self._good = max(floor, target)  # a stated ceiling stays remembered
        self._hold = min(self._policy.max_hold, 2 * self._hold) if probing else self._policy.hold
        self._pause(now + self._window)
        self._last_cut = self._last_reaction = now
        # increases count from the end of the hold: none is owed for the hold itself
        self._cooldown_until = self._last_adjust = self._paused_until + self._hold

    def _pause(self, until: float) -> None:
        """No request starts before ``until``; waiting grants move behind it at the new rate."""
        self._paused_until = until
        per_window = max(1, math.floor(self._rate * self._window))
        spacing = (per_window / self._rate + self._guard) / per_window
        slot = until
        for grant in self._grants:
            if not grant.started:
                grant.time = grant.granted = slot
                grant.anchor = None
                slot += spacing

    @property
    def guard(self) -> float:
        """Seconds added to each window's span (widened on marginal throttles, up to
        ``MAX_GUARD``)."""
        return self._guard

    def _recover(self, now: float) -> None:
        """Additive increase: toward the learned ceiling, then, after a quiet spell, beyond it.
        A widened guard returns to its configured value after the same quiet spell."""
        if now >= self._last_widen + self._policy.ceiling_memory:
            self._guard = self._base_guard
        forget_at = self._last_cut + self._policy.ceiling_memory
        if self._rate >= self.configured_rate or now < self._cooldown_until:
            self._last_adjust = max(self._last_adjust, min(now, self._cooldown_until))
            return
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
        if self._rate >= self.configured_rate:  # fully recovered: the next drop starts afresh
            self._good, self._hold = self.configured_rate, self._policy.hold

    def set_configured_rate(self, rate: float) -> None:
        """Apply a new configured rate (reload); adaptive state restarts from it."""
        with self._lock:
            adapted = self._rate < self.configured_rate
            self.configured_rate = rate
            self._rate = min(self._rate, rate) if adapted else rate
            self._ceiling = rate


class Limiter(Protocol):
    """What the client and the poller need of a limiter: :class:`RateLimiter` here, or the
    coordination's shared one (``coordination.failover.FailoverLimiter``) with replicas."""

    name: str

    @property
    def configured_rate(self) -> float:
        """The configured rate in requests/s (``api.rate_limit`` or the action's own limit)."""

    @property
    def effective_rate(self) -> float:
        """The rate in requests/s the limiter grants now (below the configured one after
        throttling)."""

    @property
    def guard(self) -> float:
        """Seconds added to each one-second window's span against timing jitter."""

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """Block until a token is granted; returns the wait in seconds; raises ``Cancelled`` when
        ``cancel`` is set first."""

    def grant_ahead(self) -> Grant | float | None:
        """A start granted now for a request another thread will send (see
        :meth:`RateLimiter.grant_ahead`), else the seconds until one could be; None when this
        limiter grants only to the sending thread's :meth:`acquire` (the shared limiter)."""

    def free_in(self) -> float | None:
        """Seconds until a start could be granted ahead (see :meth:`RateLimiter.free_in`); None
        when this limiter never grants ahead."""

    def ahead(self, grant: Grant, waited: float) -> AbstractContextManager[None]:
        """The calling thread's next :meth:`acquire` takes ``grant`` (see
        :meth:`RateLimiter.ahead`)."""

    def sent(self) -> None:
        """The calling thread's granted request has been written to the socket (see
        :meth:`RateLimiter.sent`; the shared limiter does the same in Redis); a limiter that
        counts from the grant ignores it. Never raises: it runs inside the HTTP write."""

    def on_accepted(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (monotonic s) was not throttled."""

    def on_throttled(self, limit_hint: int | None = None, marginal: bool = False,
                     sent_at: float | None = None) -> bool:
        """React to a RequestLimitExceeded (see :meth:`RateLimiter.on_throttled`); False when
        stale."""

    def set_configured_rate(self, rate: float) -> None:
        """Apply a new configured rate in requests/s (reload)."""


LimiterFactory = Callable[[str, float], Limiter]
"""Builds the limiter of one lane (``Target.lane``: the action, or ``account/action``) at a
configured rate in requests/s. The seam through which coordination shares limiters in Redis."""


class Budget:
    """One limiter per lane: Tencent counts each account and action separately.

    A lane is an action name for the implicit account, ``account/action`` with ``accounts:``.
    ``factory`` builds each limiter (a local :class:`RateLimiter` by default, confirming sends
    when ``confirm_sends``: the client reports each write, see :meth:`RateLimiter.sent`).
    """

    def __init__(self, rates: dict[str, float], clock: Clock, guard: float = 0.02,
                 policy: AimdPolicy | None = None,
                 factory: LimiterFactory | None = None, confirm_sends: bool = False) -> None:
        self._clock = clock
        self._confirm = confirm_sends
        self._guard = guard
        self._base_guard = guard
        self._policy = policy
        self._factory: LimiterFactory = factory or self._local
        self._lock = threading.Lock()
        self._limiters = {lane: self._factory(lane, rate) for lane, rate in rates.items()}

    def _local(self, lane: str, rate: float) -> Limiter:
        return RateLimiter(rate, self._clock, self._guard, policy=self._policy, name=lane,
                           confirm_sends=self._confirm)

    def limiter(self, lane: str) -> Limiter:
        """The limiter of one lane (KeyError for a lane without one)."""
        return self._limiters[lane]

    def items(self) -> list[tuple[str, Limiter]]:
        """(lane, limiter) pairs, sorted by lane."""
        with self._lock:
            return sorted(self._limiters.items())

    def update(self, rates: dict[str, float]) -> None:
        """Apply new configured rates (req/s by lane) on reload; new lanes get a limiter, lanes
        no longer configured (an account removed) are dropped."""
        with self._lock:
            for lane, rate in rates.items():
                if lane in self._limiters:
                    self._limiters[lane].set_configured_rate(rate)
                else:
                    self._limiters[lane] = self._factory(lane, rate)
            for lane in set(self._limiters) - set(rates):
                del self._limiters[lane]
