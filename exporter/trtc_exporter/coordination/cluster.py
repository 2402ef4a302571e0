"""One replica's membership of a coordination cluster: the parts ``app.py`` plugs in.

Built from ``coordination:`` and the Redis password (``checks.Checked.redis_password``):

* :meth:`Cluster.limiter_factory` is ``api.budget.Budget``'s factory: every lane gets a
  ``FailoverLimiter`` over a ``SharedRateLimiter`` (strict across replicas, local 1/N share while
  Redis is unreachable);
* :attr:`Cluster.registrations` replaces the SQLite store: registrations (and discovered
  targets) live in Redis, so every replica sees them;
* :attr:`Cluster.coordinator` heartbeats and says which targets this replica owns;
* :attr:`Cluster.relay` carries callback effects to the replica polling the task;
* :meth:`Cluster.sync_states` publishes the states this replica polled and reads everyone's, so a
  replica taking a target over starts from its last status and every replica serves all targets.

Nothing here raises a Redis error: failures go to :class:`~coordination.link.Link`, which
switches the replica to its fallback until Redis answers again. The one exception is start-up:
a Redis that answers but refuses the configuration (password, database, TLS) raises
``ConfigError`` from :class:`Cluster` (exit 2), see :func:`~coordination.link.first_contact`.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable

import redis

from trtc_exporter.api.budget import AimdPolicy, Limiter, LimiterFactory
from trtc_exporter.clock import Clock, SystemClock
from trtc_exporter.config.coordination import CoordinationConfig
from trtc_exporter.coordination.coordinator import Coordinator
from trtc_exporter.coordination.failover import FailoverLimiter
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.limiter import SharedRateLimiter
from trtc_exporter.coordination.link import Link, connect, describe, first_contact
from trtc_exporter.coordination.membership import LAPSE, Membership
from trtc_exporter.coordination.relay import EffectRelay
from trtc_exporter.coordination.state import RedisStateStore, SharedState
from trtc_exporter.coordination.targets import RedisTargetStore
from trtc_exporter.errors import ConfigError
from trtc_exporter.metrics import DropCounter, StorageErrors
from trtc_exporter.polling.state import TargetState
from trtc_exporter.secret import Secret
from trtc_exporter.targets.registrations import Registered, RegistrationStoreError

log = logging.getLogger(__name__)
FORGET_AFTER = 600.0  # seconds without an answer before a departed target's row is dropped
REFUSED = "coordination Redis unreachable: registration refused, retry later"
RESTORE_WITHIN = 300.0
"""Seconds a replica's last loaded set stays recent enough to write back after Redis lost its
data: an older one (the replica was cut off meanwhile) could bring back deleted targets."""


def member_id() -> str:
    """A unique id for this process: host, pid and a random suffix (a restart is a new member)."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(3)}"


class SharedRegistrations:
    """``targets.registrations.Store`` over Redis: what one replica accepts, all see.

    While Redis is unreachable, writes raise ``RegistrationStoreError`` (the API answers 503:
    nothing is acknowledged that is not stored) and reads keep the last loaded set. Each
    refused or failed read and write is counted in ``faults`` (store ``redis``).

    Redis may come back without its data (no persistence, a new pod): the set's epoch, a random
    token set once (``SET NX``) by the first replica that finds none, is then gone or another
    one. Every replica that sees the epoch change writes back each registration of its last
    loaded set that is absent (``HSETNX``: never over a newer one) when that set was loaded
    less than ``RESTORE_WITHIN`` ago, moves the counter past every version it saw, logs the loss
    and counts a fault. So registrations answered 2xx survive while any replica that loaded
    them lives; one deleted shortly before the loss may come back (delete it again). A failed
    read keeps the last loaded set.
    """

    def __init__(self, store: RedisTargetStore, link: Link,
                 faults: StorageErrors | None = None, clock: Clock | None = None) -> None:
        self._store = store
        self._link = link
        self._faults = faults or StorageErrors()
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._seen_version = -1  # version at the last successful load; -1: never loaded
        self._highest = 0  # the highest version ever loaded (kept across outages)
        self._epoch: str | None = None  # the epoch of the data last loaded
        self._snapshot: list[Registered] = []  # the last loaded set, to restore after a loss
        self._loaded_at = -1e18  # monotonic time of the last successful load

    def _usable(self) -> None:
        if not self._link.usable():
            self._faults.add("redis")
            raise RegistrationStoreError(REFUSED)

    def _failed(self, exc: redis.RedisError) -> None:
        """A Redis error: the link goes down (logged there), the fault is counted."""
        self._link.failed(exc)
        self._faults.add("redis")

    def load(self) -> list[Registered]:
        """The shared set; the last loaded one while Redis is unreachable or a read fails
        (re-read once it answers)."""
        try:
            self._usable()
            version, epoch = self._store.state()
            if epoch is None:  # a new Redis, or one that lost its data
                epoch = self._store.claim_epoch(secrets.token_hex(8))
            version = self._restored(version, epoch)
            items = self._store.load()
        except (redis.RedisError, RegistrationStoreError) as exc:
            if isinstance(exc, redis.RedisError):
                self._failed(exc)
            with self._lock:
                self._seen_version = -1
                return list(self._snapshot)
        with self._lock:
            self._seen_version, self._epoch = version, epoch
            self._highest = max(self._highest, version)
            self._snapshot = items
            self._loaded_at = self._clock.monotonic()
        return items

    def _restored(self, version: int, epoch: str) -> int:
        """``version``, or, when the epoch changed since our last load (Redis lost the set),
        the version after writing back this replica's last loaded set if it is recent."""
        with self._lock:
            known, highest, snapshot = self._epoch, self._highest, self._snapshot
            fresh = self._clock.monotonic() - self._loaded_at <= RESTORE_WITHIN
        if known is None or epoch == known:
            return version
        put = self._store.restore(snapshot, highest) if snapshot and fresh else 0
        self._faults.add("redis")
        log.warning("coordination: Redis lost the shared target set; wrote back %d of the %d "
                    "registrations this replica loaded%s", put, len(snapshot),
                    "" if fresh else f" (not: loaded over {RESTORE_WITHIN:.0f} s ago)")
        return self._store.version()

    def upsert(self, items: list[Registered]) -> None:
        """Store registrations in Redis; raises RegistrationStoreError (and marks the link down)
        on a Redis failure."""
        self._usable()
        try:
            self._store.upsert(items)
        except redis.RedisError as exc:
            self._failed(exc)
            raise RegistrationStoreError(REFUSED) from None

    def delete(self, ids: list[str]) -> int:
        """Delete registrations by target id; the number removed. Raises RegistrationStoreError
        on a Redis failure."""
        self._usable()
        try:
            return self._store.delete(ids)
        except redis.RedisError as exc:
            self._failed(exc)
            raise RegistrationStoreError(REFUSED) from None

    def changed(self) -> bool:
        """True when the shared version moved since our last load (or we never loaded)."""
        if not self._link.usable():
            return False
        try:
            version, epoch = self._store.state()
        except redis.RedisError as exc:
            self._link.failed(exc)
            return False
        with self._lock:
            return version != self._seen_version or epoch != self._epoch

    def close(self) -> None:
        """The Redis client belongs to the Cluster."""


class Cluster:
    """The coordination parts of one replica; thread-safe; never raises a Redis error."""

    def __init__(self, config: CoordinationConfig, password: Secret | None, clock: Clock,
                 me: str | None = None, drops: DropCounter | None = None,
                 faults: StorageErrors | None = None) -> None:
        """``drops`` counts shared registration rows that do not parse (``stored_row``);
        ``faults`` counts refused or failed shared-registration reads and writes (``redis``).

        Raises ConfigError when Redis refuses the configuration at the first contact; an
        unreachable Redis starts the replica on its fallback instead.
        """
        self.config = config
        self._clock = clock
        self.client = connect(config, password)
        self.keys = Keys(config.cluster)
        self.link = Link(self.client, clock, retry_interval=1.0, hold=config.member_ttl,
                         unseen=config.replicas)
        try:
            unreachable = first_contact(self.client, config)
        except ConfigError:
            self.client.close()
            raise
        if unreachable is not None:
            self.link.failed(unreachable)
        membership = Membership(self.client, self.keys, me or member_id(), config.member_ttl,
                                clock)
        self.coordinator = Coordinator(self.link, membership, clock, config.heartbeat)
        self.registrations = SharedRegistrations(RedisTargetStore(self.client, self.keys, drops),
                                                 self.link, faults, clock)
        self._states = RedisStateStore(self.client, self.keys)
        self.relay = EffectRelay(self.client, self.keys, self.link, membership.member_id)
        self._published: dict[str, float] = {}  # target id -> last_poll published
        self._remote: dict[str, SharedState] = {}
        self._lock = threading.Lock()
        log.info("coordination: cluster %s at %s as member %s", config.cluster,
                 describe(config.redis_url or ""), membership.member_id)

    def limiter_factory(self, guard: float, policy: AimdPolicy | None = None) -> LimiterFactory:
        """``Budget``'s factory: a shared limiter with local fallback for each lane."""
        def make(lane: str, rate: float) -> Limiter:
            account, _, action = lane.rpartition("/")
            shared = SharedRateLimiter(self.client, self.keys, account, action, rate,
                                       self._clock, guard, policy=policy, lapse=LAPSE,
                                       confirm_sends=True)
            return FailoverLimiter(shared, self.link, self._clock, guard, policy=policy,
                                   confirm_sends=True)
        return make

    def run(self, stop: threading.Event, on_members: Callable[[list[str]], None]) -> None:
        """Heartbeat until ``stop``; ``on_members`` gets each new list of live members."""
        self.coordinator.run(stop, on_members)

    def owned(self, ids: Iterable[str]) -> set[str]:
        """The target ids this replica polls among the live members it knows."""
        return set(self.coordinator.owned(ids))

    def sync_states(self, polled: Iterable[TargetState], keep: set[str]) -> None:
        """Publish states polled since the last call; read every replica's; drop rows of
        targets that left the set (``keep``: ids of the whole target set) and went quiet."""
        if not self.link.usable():
            return
        fresh = {}
        for state in polled:
            ident = state.target.id
            if state.last_poll and self._published.get(ident) != state.last_poll:
                fresh[ident] = state
        try:
            self._states.publish_many(fresh)
            remote = self._states.all()
            # a row outside our set may belong to a target another replica just added: drop
            # only rows nobody has refreshed for a while
            old = self._clock.time() - FORGET_AFTER
            self._states.forget([i for i, s in remote.items()
                                 if i not in keep and s.last_answer < old])
        except redis.RedisError as exc:
            self.link.failed(exc)
            return
        for ident, state in fresh.items():
            self._published[ident] = state.last_poll
        with self._lock:
            self._remote = {i: s for i, s in remote.items() if i in keep}
        for ident in set(self._published) - keep:
            del self._published[ident]

    def shared_state(self, target_id: str) -> SharedState | None:
        """The last state any replica published for a target (as of the last sync)."""
        with self._lock:
            return self._remote.get(target_id)

    def stop(self) -> None:
        """Close the Redis client (its connection pool)."""
        self.client.close()
