"""A strict sliding-window limiter per (account, action), shared by every replica through Redis.

Same guarantee as ``budget.RateLimiter``: no window of ``1 s + guard`` holds more than
``floor(rate)`` request starts, retries included, now across all replicas. Each grant has two
atomic steps (Lua scripts in :mod:`limiter_lua`): *reserve* plans a slot (1/rate after the last
one, one span after the one ``rate`` places back) so waiting is first-come first-served and
smooth; *confirm*, run once the slot has come, records the start at the Redis server's time only
if the window ending now still has room, otherwise it says how long to wait. Reading and writing
happen inside one script: no client-side read-then-write.

With ``confirm_sends`` (the exporter's choice) a start counts from its request's write, as the
local limiter's does: *confirm* records it as not yet written (it counts in every window from
then on) and *sent*, called by the granted thread once the request is on the socket, moves it to
the Redis server's time of that report. A replica held up between grant and write (a saturated
CPU, the GIL) then pushes every replica's later starts back instead of landing within a second
of them; a start never reported (its replica died) counts until ``UNSENT_LIMIT``.

Adaptation (``on_throttled``, ``on_accepted``) follows ``budget.RateLimiter`` step by step on
one shared state: every replica records its accepted requests' send times in Redis (riding on
its next script call, see ``FLUSH_AFTER``), so a
throttle whose message states no limit cuts the shared rate to 95 % of what the server accepted
from all replicas in the second before it, pauses every replica one window, and holds before
probing; a throttle of a request sent before any replica's last reaction is stale. Send times
travel as ages (our monotonic clock), turned into Redis time by the scripts.

The public shape matches ``budget.RateLimiter`` (``acquire``, ``on_throttled``,
``effective_rate``, ``guard``, ``configured_rate``, ``set_configured_rate``, ``name``), so
``budget.Budget`` can hold one in place of a local limiter. Redis errors propagate as
``redis.RedisError``; :mod:`failover` turns them into the local fallback.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import redis

from trtc_exporter.api.budget import MAX_GUARD, AimdPolicy, Cancelled
from trtc_exporter.clock import Clock
from trtc_exporter.coordination import limiter_lua
from trtc_exporter.coordination.keys import Keys

KEEP_MS = 60_000  # idle limiter keys vanish after a minute; an active one refreshes them
US = 1_000_000
FLUSH_AFTER = 0.25
"""Seconds an accepted request's send time may wait for the next script call to carry it to
Redis before ``on_accepted`` sends it alone: the measurement stays at most this far behind,
without a Redis round trip per request."""
MAX_PENDING = 256  # a bound on send times waiting (20 req/s fill it in 12 s, far past a flush)
UNSENT_LIMIT = 30.0
"""Seconds a start whose write was never reported (its replica died or lost Redis between the
grant and the report) keeps counting as not yet written: it then counts as written at this
deadline. Well above the time a request may take to connect and write (``api.timeout``, 6 s by
default), so a slow connect is never counted early; a crashed replica holds at most the starts
it had in flight, for this long."""
UNSENT_POLL = 0.005  # how often a grant asks again while the window is full of unreported writes


@dataclass(frozen=True, slots=True)
class SharedGrant:
    """One granted request start: Redis server time (s since the epoch) and our wait (s)."""

    time: float
    waited: float


class SharedRateLimiter:
    """Thread-safe client of one shared limiter; many replicas may hold one for the same key.

    ``fake_now``: tests pass their FakeClock's time to the scripts instead of Redis ``TIME``,
    so schedules are computed without real waiting. Production leaves it off.
    """

    def __init__(self, client: redis.Redis, keys: Keys, account: str, action: str,
                 rate: float, clock: Clock, guard: float = 0.02, window: float = 1.0,
                 policy: AimdPolicy | None = None, fake_now: bool = False,
                 lapse: float = 0.0, confirm_sends: bool = False) -> None:
        """``lapse``: seconds a member whose heartbeat expired still holds its share back (it
        may be cut off and spending its fallback share); 0 counts live members only.
        ``confirm_sends``: a start counts from its request's write, reported through
        :meth:`sent` (as ``budget.RateLimiter`` with ``confirm_sends``), not from its grant."""
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.name = action
        self.account = account
        self.configured_rate = rate
        self._clock = clock
        self._fake_now = fake_now
        self._base_guard = guard
        self._window = window
        self._policy = policy or AimdPolicy()
        self._share = 1.0
        self._lapse = lapse
        self._unsent_us = round(UNSENT_LIMIT * US) if confirm_sends else 0
        self._unreported = threading.local()  # this thread's granted start, write not reported
        self._lock = threading.Lock()
        self._guard = guard
        reserved, started, aimd, seq, accepted = (
            keys.limiter(account, action, part)
            for part in ("reserved", "started", "aimd", "seq", "accepted"))
        self._aimd, self._members = aimd, keys.members
        self._reserve_keys = [reserved, aimd, seq, keys.members, accepted]
        self._confirm_keys = [reserved, started, aimd, keys.members]
        self._throttled_keys = [aimd, accepted, reserved, started, keys.members, seq]
        self._pending: list[float] = []  # monotonic send times of accepted requests, unsent
        self._accepted_keys = [accepted, seq]
        self._reserve = client.register_script(limiter_lua.RESERVE)
        self._confirm = client.register_script(limiter_lua.CONFIRM)
        self._throttled = client.register_script(limiter_lua.THROTTLED)
        self._status = client.register_script(limiter_lua.STATUS)
        self._accepted = client.register_script(limiter_lua.ACCEPTED)
        self._sent = client.register_script(limiter_lua.SENT)
        self._started = started

    # -- parameters ------------------------------------------------------------------------
    def _args(self, *extra: object) -> list[Any]:
        now = str(round(self._clock.time() * US)) if self._fake_now else ""
        with self._lock:
            params = {
                "configured": self.configured_rate, "guard_us": round(self._base_guard * US),
                "window_us": round(self._window * US), "share": self._share,
                "decrease": self._policy.decrease, "increase": self._policy.increase_per_second,
                "cooldown_us": round(self._policy.cooldown * US),
                "ceiling_margin": self._policy.ceiling_margin,
                "memory_us": round(self._policy.ceiling_memory * US),
                "floor_fraction": self._policy.floor_fraction,
                "max_guard_us": round(MAX_GUARD * US), "keep_ms": KEEP_MS,
                "hold_us": round(self._policy.hold * US),
                "max_hold_us": round(self._policy.max_hold * US),
                "margin": self._policy.accepted_margin,
                "lapse_us": round(self._lapse * US), "unsent_us": self._unsent_us,
                "unsent_poll_us": round(UNSENT_POLL * US)}
        return [now, json.dumps(params), *extra]

    def set_share(self, share: float) -> None:
        """Use only this fraction (0 < share <= 1) of the shared rate, e.g. while members that
        may still be on their fallback share have not rejoined (see :mod:`failover`)."""
        with self._lock:
            self._share = min(1.0, max(0.01, share))

    def set_configured_rate(self, rate: float) -> None:
        """A reload: the next script call applies it to the shared state (as budget.py does)."""
        with self._lock:
            self.configured_rate = rate

    # -- tokens ----------------------------------------------------------------------------
    def take(self, cancel: threading.Event | None = None) -> SharedGrant:
        """Block until a start is granted; Cancelled if ``cancel`` is set first.

        A cancelled reservation stays spent (as in budget.py): no request may follow it.
        """
        event = cancel or threading.Event()
        started = self._clock.monotonic()
        ident, slot, now, _, guard = self._reserve(keys=self._reserve_keys,
                                                   args=self._args(self._drain()))
        with self._lock:
            self._guard = int(guard) / US
        wait = (int(slot) - int(now)) / US
        while True:
            if wait > 0 and self._clock.wait(event, wait):
                raise Cancelled
            granted, value = self._confirm(keys=self._confirm_keys, args=self._args(ident))
            if int(granted):
                if self._unsent_us:
                    self._unreported.ident = ident
                return SharedGrant(int(value) / US, max(0.0, self._clock.monotonic() - started))
            wait = int(value) / US

    def acquire(self, cancel: threading.Event | None = None) -> float:
        """``budget.RateLimiter.acquire``'s contract: block until our start, return the wait."""
        self.sent()  # this thread's previous request, if unreported, is long written
        return self.take(cancel).waited

    def sent(self) -> None:
        """``budget.Limiter.sent``: the request this thread was last granted has been written
        (or never will be); its start moves to the Redis server's time now, and the starts a
        window later no longer wait for it. A no-op without ``confirm_sends`` or when nothing is
        outstanding. A Redis error propagates (the start then counts until its deadline)."""
        ident = getattr(self._unreported, "ident", None)
        if ident is None:
            return
        self._unreported.ident = None
        self._sent(keys=[self._started], args=self._args(ident))

    # -- adaptation ------------------------------------------------------------------------
    def _age_us(self, sent_at: float) -> str:
        """How long ago (integer us, by this replica's monotonic clock) ``sent_at`` was: the
        script turns it into Redis time, so replica clock offsets never enter the state."""
        return str(max(0, round((self._clock.monotonic() - sent_at) * US)))

    def _drain(self) -> str:
        """The pending accepted send times as ages (us, comma-separated), now leaving for Redis
        with the script call they ride on (lost with it if that call fails: a measurement)."""
        with self._lock:
            pending, self._pending = self._pending, []
        return ",".join(self._age_us(t) for t in pending)

    def on_accepted(self, sent_at: float) -> None:
        """A request sent at ``sent_at`` (monotonic s) was accepted: recorded in the shared
        measurement, which an unstated limit is cut to (every replica's requests count). It
        rides on this replica's next reservation, or goes alone once the oldest waiting send
        time is ``FLUSH_AFTER`` old."""
        with self._lock:
            self._pending.append(sent_at)
            del self._pending[:-MAX_PENDING]
            due = self._clock.monotonic() - self._pending[0] >= FLUSH_AFTER
        if due:
            self._accepted(keys=self._accepted_keys, args=self._args(self._drain()))

    def on_throttled(self, limit_hint: int | None = None, marginal: bool = False,
                     sent_at: float | None = None) -> bool:
        """``budget.RateLimiter.on_throttled`` on the shared state; False when the signal is
        stale (with ``sent_at``: the request was sent before the last reaction of any replica;
        without: during the cool-down)."""
        age = "" if sent_at is None else self._age_us(sent_at)
        acted = self._throttled(keys=self._throttled_keys,
                                args=self._args(limit_hint or 0, "1" if marginal else "0", age,
                                                self._drain()))
        return bool(int(acted))

    def _read_status(self) -> tuple[float, float]:
        rate, guard = self._status(keys=[self._aimd, self._members], args=self._args())
        with self._lock:
            self._guard = int(guard) / US
        return float(rate), int(guard) / US

    @property
    def effective_rate(self) -> float:
        """The shared effective rate (req/s) after AIMD, times the share usable now (lapsed
        members held back, and this replica's own share while rejoining)."""
        return self._read_status()[0]

    @property
    def guard(self) -> float:
        """The guard (s) seen in the last answer from Redis."""
        with self._lock:
            return self._guard
