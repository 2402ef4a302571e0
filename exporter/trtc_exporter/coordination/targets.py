"""The dynamic target set shared in Redis: registrations and webhook-discovered targets.

Same operations as the SQLite ``registry.Registry`` (``load``, ``upsert``, ``delete``,
``close``), so ``TargetSet.attach`` takes either; plus ``expire`` (TTL done atomically in Redis)
and ``version``, a counter bumped by every change (and announced on a pub/sub channel) so each
replica re-reads the set only when it changed. One HASH maps target id -> JSON
``{"spec": …, "created": s, "expires_at": s|null}``; a ZSET indexes expiry times.
A row that does not parse is skipped and counted, never breaks the others.
"""

from __future__ import annotations

import json
import logging
import threading

import redis

from trtc_exporter.coordination.keys import Keys
from trtc_exporter.errors import show
from trtc_exporter.metrics import DropCounter
from trtc_exporter.targets.registrations import Registered, target_from_json, target_to_json

log = logging.getLogger(__name__)
MAX_ROW = 16_384  # bytes; a registration spec is a few hundred

# KEYS: targets, expiry, version. ARGV: ids. Deletes and bumps the version if any went.
_DELETE = """
local gone = 0
for _, id in ipairs(ARGV) do
  gone = gone + redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
if gone > 0 then redis.call('INCR', KEYS[3]) end
return gone
"""
# KEYS: targets, expiry, version. ARGV[1]: the lowest version to move to; then id, record,
# expires_at ('' for none), repeated. Writes each record whose id is absent (HSETNX: a newer
# registration wins), and moves the version past ARGV[1], so every replica, whatever version it
# saw before the loss, sees a change.
_RESTORE = """
local put = 0
for i = 2, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    put = put + 1
    if ARGV[i + 2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i]) end
  end
end
local floor = tonumber(ARGV[1])
if tonumber(redis.call('GET', KEYS[3]) or 0) < floor then redis.call('SET', KEYS[3], floor) end
redis.call('INCR', KEYS[3])
return put
"""
# KEYS: targets, expiry, version. ARGV[1]: now (s). Returns the expired ids.
_EXPIRE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
end
if #ids > 0 then redis.call('INCR', KEYS[3]) end
return ids
"""


def encode(item: Registered) -> str:
    """One HASH value: the target spec (as the registration API takes it), created and expiry
    (Unix seconds)."""
    return json.dumps({"spec": json.loads(target_to_json(item.target)),
                       "created": item.created, "expires_at": item.expires_at})


def decode(raw: bytes | str) -> Registered:
    """One stored row, its spec validated as every registration is (``target_from_json``);
    ValueError/KeyError/TypeError when it is not one of ours."""
    if len(raw) > MAX_ROW:
        raise ValueError("row too large")
    row = json.loads(raw)
    expires = row["expires_at"]
    return Registered(target_from_json(json.dumps(row["spec"])), float(row["created"]),
                      None if expires is None else float(expires))


class RedisTargetStore:
    """Thread-safe; every method may raise ``redis.RedisError`` (see :mod:`failover`)."""

    def __init__(self, client: redis.Redis, keys: Keys, drops: DropCounter | None = None
                 ) -> None:
        """``drops`` counts skipped rows (reason ``stored_row``), as the SQLite store does."""
        self._client = client
        self._drops = drops or DropCounter()
        self._keys = keys
        self._lock = threading.Lock()
        self.bad_rows = 0  # rows skipped by load() since start
        self._delete = client.register_script(_DELETE)
        self._restore = client.register_script(_RESTORE)
        self._expire = client.register_script(_EXPIRE)

    def load(self) -> list[Registered]:
        """Every stored registration that parses."""
        rows = self._client.hgetall(self._keys.targets)
        out = []
        for raw in rows.values():
            try:
                out.append(decode(raw))
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
                with self._lock:
                    self.bad_rows += 1
                self._drops.add("stored_row")
                log.error("shared target set: skipping an unreadable row: %s", show(str(exc)))
        return out

    def upsert(self, items: list[Registered]) -> None:
        """Insert or refresh registrations in one MULTI/EXEC transaction."""
        if not items:
            return
        k = self._keys
        pipe = self._client.pipeline(transaction=True)
        pipe.hset(k.targets, mapping={i.target.id: encode(i) for i in items})
        expiring = {i.target.id: i.expires_at for i in items if i.expires_at is not None}
        if expiring:
            pipe.zadd(k.target_expiry, expiring)
        lasting = [i.target.id for i in items if i.expires_at is None]
        if lasting:
            pipe.zrem(k.target_expiry, *lasting)
        pipe.incr(k.targets_version)
        pipe.publish(k.targets_channel, "upsert")
        pipe.execute()

    def delete(self, ids: list[str]) -> int:
        """Delete registrations by target id in one script; the number removed; announces a
        change."""
        if not ids:
            return 0
        k = self._keys
        gone = int(self._delete(keys=[k.targets, k.target_expiry, k.targets_version], args=ids))
        if gone:
            self._client.publish(k.targets_channel, "delete")
        return gone

    def restore(self, items: list[Registered], past: int) -> int:
        """Write back registrations whose ids are absent (after Redis lost its data), never
        over a newer one, and move the version past ``past`` (the highest seen before the
        loss); the number written; announces the change."""
        args: list[str] = [str(past)]
        for item in items:
            expires = "" if item.expires_at is None else repr(item.expires_at)
            args += [item.target.id, encode(item), expires]
        k = self._keys
        put = int(self._restore(keys=[k.targets, k.target_expiry, k.targets_version], args=args))
        self._client.publish(k.targets_channel, "restore")
        return put

    def expire(self, now: float) -> list[str]:
        """Drop registrations whose ``expires_at`` (wall time, s) is <= now; their ids."""
        k = self._keys
        ids = self._expire(keys=[k.targets, k.target_expiry, k.targets_version], args=[now])
        if ids:
            self._client.publish(k.targets_channel, "expire")
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def version(self) -> int:
        """The change counter: re-``load()`` when it differs from the last one seen."""
        return int(self._client.get(self._keys.targets_version) or 0)

    def state(self) -> tuple[int, str | None]:
        """(change counter, epoch token or None when absent), in one round trip."""
        version, epoch = self._client.mget(self._keys.targets_version, self._keys.targets_epoch)
        text = epoch.decode() if isinstance(epoch, bytes) else epoch
        return int(version or 0), text

    def claim_epoch(self, token: str) -> str:
        """Set the epoch to ``token`` unless one is set (SET NX); the epoch now in force."""
        self._client.set(self._keys.targets_epoch, token, nx=True)
        epoch = self._client.get(self._keys.targets_epoch)
        return epoch.decode() if isinstance(epoch, bytes) else str(epoch or token)

    def close(self) -> None:
        """Nothing to release: the Redis client belongs to the caller."""
