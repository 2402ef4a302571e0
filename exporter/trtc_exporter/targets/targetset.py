"""The merged target set: config, target files and the registration API, with a cardinality cap.

Sources are merged in that order and deduplicated by identity (the first source wins). Beyond
``max_targets`` new targets are refused, loudly: the API answers 429, files log and count.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

from trtc_exporter.clock import Clock
from trtc_exporter.errors import counted
from trtc_exporter.target import Target, duplicate_text
from trtc_exporter.targets.registrations import Registered, Store

log = logging.getLogger("trtc_exporter.targetset")  # caller= stays as before
Key = tuple[str, ...]
CHANGES = ("added", "removed", "expired", "refused")


class TargetLimitError(Exception):
    """Registering would exceed max_targets."""


class TargetConflictError(Exception):
    """A registration asks the API the same thing as a known target under another identity
    (:attr:`Target.lookup`: one 1.0 TaskId with and without ``sdk_app_id``)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A registered target and its expiry (wall-clock s; None for never)."""
    target: Target
    expires_at: float | None = None


class TargetSet:
    """Merges config, file and registered targets (in that order of precedence) under
    ``max_targets``, counts changes by (change, source) and expires registrations by TTL."""

    def __init__(self, clock: Clock, max_targets: int,
                 store: Store | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.max_targets = max_targets
        self._store = store
        self._config: list[Target] = []
        self._files: list[Target] = []
        self._api: dict[Key, Registered] = {}
        self._ids: dict[str, Key] = {}  # Target.id (a hash) of each registration, computed once
        self._lookups: dict[Key, Target] | None = None  # built when needed, then kept up to date
        self._current: dict[Key, Target] = {}
        self._refused: set[Key] = set()
        self._sources: frozenset[str] = frozenset({"api", "webhook"})
        self.changes: Counter[tuple[str, str]] = Counter()
        self.attach(store)

    def attach(self, store: Store | None,
               sources: frozenset[str] = frozenset({"api", "webhook"})) -> None:
        """Use this store (None: registration off): its targets of ``sources`` (``api``
        registrations, ``webhook`` discoveries) replace the dynamic ones.

        Registrations whose TTL passed while the exporter was down are expired at once instead
        of being polled until the first maintenance pass.
        """
        with self._lock:
            self._store = store
            self._sources = sources
            loaded = [] if store is None else store.load()
            self._api = {r.target.key: r for r in loaded if r.target.source in sources}
            self._ids = {r.target.id: k for k, r in self._api.items()}
            self._lookups = None
        self.expire()

    def refresh(self) -> bool:
        """Re-read the store when another replica changed it (shared store); True if re-read."""
        store = self._store
        if store is None or not store.changed():
            return False
        self.attach(store, self._sources)
        return True

    # -- sources ----------------------------------------------------------------------------
    def set_config(self, targets: list[Target] | tuple[Target, ...]) -> None:
        """Replace the targets from the config file (on start and reload)."""
        with self._lock:
            self._config = list(targets)

    def set_files(self, targets: list[Target]) -> None:
        """Replace the targets read from target files."""
        with self._lock:
            self._files = list(targets)

    def register(self, targets: list[Target], ttl: float | None) -> list[Target]:
        """Add or refresh API targets (idempotent); raises TargetLimitError past the cap.

        Returns the targets new to the merged set; they join it at once (counted as added), at
        its end as a full :meth:`merged` would put them, so a registration costs O(batch) once
        the lookup index exists.
        """
        now = self._clock.time()
        expires = None if ttl is None else now + ttl
        with self._lock:
            self._check_conflicts(targets)
            merged_keys = set(self._current) | set(self._api)
            new = [t for t in targets if t.key not in merged_keys]
            if len(merged_keys) + len(new) > self.max_targets:
                for target in new:
                    self.changes[("refused", target.source)] += 1
                raise TargetLimitError(
                    f"max_targets ({self.max_targets}) reached: "
                    f"{counted(len(merged_keys), 'target')}, "
                    f"{len(new)} new would exceed it")
            items = [Registered(t, self._api[t.key].created if t.key in self._api else now,
                                expires) for t in targets]
            if self._store is not None:
                self._store.upsert(items)
            known = self._lookup_index()
            for item in items:
                self._api[item.target.key] = item
                self._ids.setdefault(item.target.id, item.target.key)
                known[item.target.lookup] = item.target
            new = list({t.key: t for t in new}.values())  # a batch may name a target twice
            for target in new:
                self._current[target.key] = target
                self.changes[("added", target.source)] += 1
        return new

    def _lookup_index(self) -> dict[Key, Target]:
        """Every known target by its lookup (dynamic ones win), as _check_conflicts reads it."""
        if self._lookups is None:
            self._lookups = {t.lookup: t for t in (*self._current.values(),
                                                   *(r.target for r in self._api.values()))}
        return self._lookups

    def _check_conflicts(self, targets: list[Target]) -> None:
        known = self._lookup_index()
        for index, target in enumerate(targets):
            other = known.get(target.lookup)
            if other is not None and other.key != target.key:
                raise TargetConflictError(
                    f"targets[{index}]: " + duplicate_text(f"the {other.source} target {other.id}",
                                                           other, target))

    def unregister(self, target_id: str) -> bool:
        """Remove the registration with this id; False when there is none."""
        return self.withdraw(target_id) is not None

    def withdraw(self, target_id: str) -> list[Target] | None:
        """Remove a registration; the targets that left the merged set (none when a config or
        file target of the same identity wins), or None when no registration has this id.

        O(1) unless targets were refused at the cap: then the merged set is left for the next
        :meth:`merged` to refill, and the departed target is reported all the same.
        """
        with self._lock:
            key = self._ids.pop(target_id, None)
            if key is None:
                return None
            if self._store is not None:
                self._store.delete([target_id])
            item = self._api.pop(key)
            self._lookups = None
            current = self._current.get(key)
            if current is None or current.source != item.target.source:  # refused, or
                return []                                                   # config/file wins
            del self._current[key]
            self.changes[("removed", current.source)] += 1
            return [current]

    @property
    def has_refusals(self) -> bool:
        """True while targets wait beyond ``max_targets`` (a removal must re-merge to admit)."""
        with self._lock:
            return bool(self._refused)

    def expire(self) -> int:
        """Drop API targets whose TTL passed; returns how many."""
        now = self._clock.time()
        with self._lock:
            gone = [r for r in self._api.values() if r.expires_at is not None and
                    r.expires_at <= now]
            if not gone:
                return 0
            if self._store is not None:
                self._store.delete([r.target.id for r in gone])
            self._lookups = None
            for item in gone:
                del self._api[item.target.key]
                self._ids.pop(item.target.id, None)
            for item in gone:
                self.changes[("expired", item.target.source)] += 1
        log.info("%d registered targets expired", len(gone))
        return len(gone)

    # -- merging ----------------------------------------------------------------------------
    def merged(self) -> list[Target]:
        """The target set to poll, recording added/removed/refused changes since last time."""
        with self._lock:
            merged: dict[Key, Target] = {}
            lookups: dict[Key, Target] = {}
            refused = 0
            candidates = [*self._config, *self._files, *(r.target for r in self._api.values())]
            self._refused &= {t.key for t in candidates}  # forget refusals of departed targets
            for target in candidates:
                first = lookups.setdefault(target.lookup, target)
                if first is not target:  # the same task from two sources: the first wins
                    if first.key != target.key:
                        log.warning("%s target %s skipped: %s", target.source, target.id,
                                    duplicate_text(f"{first.source} target {first.id}", first,
                                                   target))
                    continue
                if len(merged) >= self.max_targets:
                    refused += self._refuse(target)
                    continue
                merged[target.key] = target
            self._count(self._current, merged)
            self._current = merged
            self._lookups = None
            if refused:
                log.error("max_targets (%d) reached: %s refused", self.max_targets,
                          counted(refused, "target"))
            return list(merged.values())

    def _refuse(self, target: Target) -> int:
        if target.key in self._refused:
            return 0
        self._refused.add(target.key)
        self.changes[("refused", target.source)] += 1
        return 1

    def _count(self, before: dict[Key, Target], after: dict[Key, Target]) -> None:
        for key in after.keys() - before.keys():
            self.changes[("added", after[key].source)] += 1
            self._refused.discard(key)
        for key in before.keys() - after.keys():
            self.changes[("removed", before[key].source)] += 1

    def registered(self, key: Key) -> Registered | None:
        """The API registration of this identity, if any (whatever source wins the merge)."""
        with self._lock:
            return self._api.get(key)

    def expiry_of(self, key: Key) -> float | None:
        """When the registration under ``key`` expires (wall-clock s), or None (never, or not
        registered)."""
        with self._lock:
            item = self._api.get(key)
            return None if item is None else item.expires_at

    def find(self, target_id: str) -> Target | None:
        """The current target with this id, or None."""
        with self._lock:
            return next((t for t in self._current.values() if t.id == target_id), None)
