"""Redis key names: one namespace per ``coordination.cluster``.

The cluster name sits in a hash tag (``{…}``) so every key of one cluster maps to one Redis
Cluster slot, which multi-key scripts need (https://redis.io/docs/reference/cluster-spec/,
"Hash tags"). Account and action names are config/label values and contain no ``:``.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "trtc-exporter"


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis key names of one cluster (``coordination.cluster``), all in one hash slot."""
    cluster: str

    def _key(self, *parts: str) -> str:
        return ":".join((PREFIX, "{" + self.cluster + "}", *parts))

    def limiter(self, account: str, action: str, part: str) -> str:
        """``reserved``, ``started``, ``accepted`` ZSETs, ``aimd`` HASH, ``seq`` counter."""
        return self._key("limiter", account, action, part)

    @property
    def members(self) -> str:
        """The membership ZSET (member id -> last heartbeat)."""
        return self._key("members")

    @property
    def targets(self) -> str:
        """The registered targets HASH (target id -> JSON record)."""
        return self._key("targets")

    @property
    def target_expiry(self) -> str:
        """The registrations' expiry ZSET (target id -> Unix seconds)."""
        return self._key("targets", "expiry")

    @property
    def targets_epoch(self) -> str:
        """A random token set once per life of the data: gone or new means Redis lost it."""
        return self._key("targets", "epoch")

    @property
    def targets_version(self) -> str:
        """The counter bumped on every change of the registered targets."""
        return self._key("targets", "version")

    @property
    def targets_channel(self) -> str:
        """The pub/sub channel announcing a change of the registered targets."""
        return self._key("targets", "changed")

    @property
    def events_channel(self) -> str:
        """Pub/sub channel of callback effects relayed to the owner (:mod:`relay`)."""
        return self._key("events")

    @property
    def state(self) -> str:
        """The shared target state HASH (target id -> JSON record, see ``state.py``)."""
        return self._key("state")
