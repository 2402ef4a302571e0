"""One replica's coordination loop: heartbeat, live members, ownership, and the metric values.

``tick()`` runs every ``coordination.heartbeat`` seconds (``run`` does that on a thread). While
Redis is down, the last known member list stays in force: the replica keeps polling the targets
it owned then, and its budget falls back to 1/N (see :mod:`failover`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

import redis

from trtc_exporter.clock import Clock
from trtc_exporter.coordination.link import Link
from trtc_exporter.coordination.membership import Membership
from trtc_exporter.coordination.ownership import owner

log = logging.getLogger(__name__)


class Coordinator:
    """Thread-safe; never raises a Redis error."""

    def __init__(self, link: Link, membership: Membership, clock: Clock,
                 heartbeat: float) -> None:
        self._link = link
        self._membership = membership
        self._clock = clock
        self._heartbeat = heartbeat
        self._lock = threading.Lock()
        self._members: list[str] = [membership.member_id]
        self._owned = 0

    @property
    def member_id(self) -> str:
        """This replica's member id in the membership set."""
        return self._membership.member_id

    def tick(self) -> list[str]:
        """Heartbeat (or probe while down); returns the member list now in force.

        Right after a rejoin the heartbeat waits until the link has settled (one limiter span,
        :meth:`Link.settled_in`): members that count us as live again give us a share of the
        shared window, which our last local grants must no longer occupy.
        """
        if self._link.usable():
            pause = self._link.settled_in()
            if pause > 0:
                self._clock.sleep(pause)
            try:
                members = self._membership.beat()
            except redis.RedisError as exc:
                # a beat that timed out may still have reached Redis: it extends the lease too
                self._link.leased(self._membership.ttl)
                self._link.failed(exc)
            else:
                self._link.leased(self._membership.ttl)
                self._link.saw_members(len(members))
                with self._lock:
                    if members != self._members:
                        log.info("coordination: live members: %d", len(members))
                    self._members = members
        with self._lock:
            return list(self._members)

    def run(self, stop: threading.Event,
            on_change: Callable[[list[str]], None] | None = None) -> None:
        """Tick every heartbeat until ``stop`` is set; then leave the cluster cleanly.

        ``on_change`` gets the member list whenever it changed (and once at the start), so the
        caller re-divides its targets; its exceptions are logged, never end the loop.
        """
        last: list[str] | None = None
        while not stop.is_set():
            members = self.tick()
            if on_change is not None and members != last:
                try:
                    on_change(members)
                    last = members
                except Exception:  # a failed re-division is retried at the next heartbeat
                    log.exception("coordination: applying the member list failed")
            self._clock.wait(stop, self._heartbeat)
        with contextlib.suppress(redis.RedisError):  # the TTL removes us anyway
            self._membership.leave()

    def members(self) -> Sequence[str]:
        """The live members at the last heartbeat (a copy)."""
        with self._lock:
            return list(self._members)

    def owns(self, key: str) -> bool:
        """True when this replica polls the target with this key (``Target.id``)."""
        with self._lock:
            return owner(key, self._members) == self._membership.member_id

    def owned(self, keys: Iterable[str]) -> list[str]:
        """The keys this replica polls; also the value of ``trtc_exporter_targets_owned``."""
        with self._lock:
            members, me = list(self._members), self._membership.member_id
        mine = [k for k in keys if owner(k, members) == me]
        with self._lock:
            self._owned = len(mine)
        return mine

    # -- metric values ----------------------------------------------------------------------
    def up(self) -> float:
        """``trtc_exporter_coordination_up``: 1 while Redis answers, else 0."""
        return 1.0 if self._link.up else 0.0

    def member_count(self) -> float:
        """``trtc_exporter_coordination_members``: live members in force (last known if down)."""
        with self._lock:
            return float(len(self._members))

    def targets_owned(self) -> float:
        """``trtc_exporter_targets_owned``: targets this replica polls (at the last owned())."""
        with self._lock:
            return float(self._owned)
