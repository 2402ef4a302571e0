"""Live members of a cluster: each replica heartbeats; a member missing its TTL is gone.

One ZSET holds member id -> expiry (Redis server time, microseconds). A heartbeat refreshes our
expiry, drops members expired for longer than ``lapse`` and returns the live list in one atomic
script, so a dead replica's targets move within TTL + one heartbeat (<= 2 x TTL, the takeover
bound). Entries expired less than ``lapse`` ago stay: the shared limiter holds their share back
(:mod:`limiter`), since such a member may be cut off from Redis and polling on its fallback.
"""

from __future__ import annotations

import redis

from trtc_exporter.clock import Clock
from trtc_exporter.coordination.keys import Keys

US = 1_000_000
LAPSE = 60.0
"""Seconds a member whose heartbeat expired keeps its share of the shared budget held back: a
replica cut off from Redis spends its fallback share meanwhile. A clean stop leaves at once."""
_BEAT = """
local now
if ARGV[1] ~= '' then now = tonumber(ARGV[1]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) * 1000000 + tonumber(t[2]) end
local lapse = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now - lapse))
if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4]) end
redis.call('PEXPIRE', KEYS[1], math.floor((tonumber(ARGV[2]) + lapse) / 1000) + 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%.0f', now), '+inf')
"""


class Membership:
    """This replica's membership; ``beat()`` every heartbeat, ``leave()`` on clean shutdown.

    ``fake_now``: tests use their FakeClock's time instead of Redis ``TIME``.
    """

    def __init__(self, client: redis.Redis, keys: Keys, member_id: str, ttl: float,
                 clock: Clock, fake_now: bool = False, lapse: float = LAPSE) -> None:
        self.member_id = member_id
        self.ttl = ttl  # seconds: other members count us as live this long after a heartbeat
        self._client = client
        self._key = keys.members
        self._ttl_us = round(ttl * US)
        self._lapse_us = round(lapse * US)
        self._clock = clock
        self._fake_now = fake_now
        self._script = client.register_script(_BEAT)

    def _run(self, join: bool) -> list[str]:
        now = str(round(self._clock.time() * US)) if self._fake_now else ""
        members = self._script(keys=[self._key],
                               args=[now, self._ttl_us, "1" if join else "0", self.member_id,
                                     self._lapse_us])
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    def beat(self) -> list[str]:
        """Refresh our TTL; returns the sorted ids of live members (ours included)."""
        return self._run(join=True)

    def live(self) -> list[str]:
        """The live members without refreshing our own entry."""
        return self._run(join=False)

    def leave(self) -> None:
        """Remove our entry at once, so others take our targets over without waiting the TTL."""
        self._client.zrem(self._key, self.member_id)
