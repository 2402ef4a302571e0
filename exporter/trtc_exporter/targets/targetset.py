"""The merged target set: config, target files and the registration API, with a cardinality cap.

Sources are merged in that order and deduplicated by identity (the first source wins). Beyond
``max_targets`` new targets are refused, loudly: the API answers 429, files log and count.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trtc_exporter.clock import Clock
from trtc_exporter.errors import counted
from trtc_exporter.target import Target, duplicate_text
from trtc_exporter.targets.candidates import Candidates, SetChange, firsts, same, skipped, touched
from trtc_exporter.targets.registrations import Registered, RegistrationStoreError, Store

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
        self._candidates = Candidates()  # config, files and registrations, indexed by lookup
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
            self._candidates.set_api({r.target.key: r for r in loaded
                                      if r.target.source in sources})
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

    @property
    def _api(self) -> dict[Key, Registered]:
        return self._candidates.api

    # -- sources ----------------------------------------------------------------------------
    def set_config(self, targets: Sequence[Target]) -> None:
        """Replace the targets from the config file (on start and reload)."""
        with self._lock:
            self._candidates.set_config(targets)

    def set_files(self, files: Mapping[str, Sequence[Target]]) -> None:
        """Replace the targets read from target files, by file path (merged in path order);
        the next :meth:`merged` merges them."""
        with self._lock:
            self._candidates.set_files(files)

    def update_files(self, files: Mapping[str, Sequence[Target]]) -> SetChange:
        """Take the target files' current content (path -> targets, as the watcher holds it) and
        apply at once what changed to the merged set, counted as :meth:`merged` counts it.

        Only the lookups of the entries that changed in edited files are merged again (same
        precedence and duplicate rules as :meth:`merged`, whose result it equals), so applying
        costs O(changed entries x files); comparing an edited file with its previous content
        costs O(file), as reading it did. Returns the change, or ``SetChange(whole=True)``
        (the files taken, the merged set left for :meth:`merged`) while targets wait beyond
        ``max_targets`` or when the change would reach it.
        """
        with self._lock:
            sources = self._candidates
            paths = sources.edited(files)
            if not paths:
                return SetChange()
            new = {path: firsts(files.get(path, ()), warn=True) for path in paths}
            lookups = set().union(*(touched(sources.file_firsts(p), new[p]) for p in paths))
            held = {lookup: self._holder(sources.of(lookup)) for lookup in lookups}
            sources.set_files(files)
            for path in paths:
                sources.use_file_firsts(path, new[path])
            pairs = {lookup: (held[lookup], self._winner(sources.of(lookup)))
                     for lookup in sorted(lookups)}  # sorted: the same order, logs every run
            change = _change(pairs.values())
            if self._refused or (len(self._current) + len(change.added) - len(change.removed)
                                 > self.max_targets):
                return SetChange(whole=True)
            self._commit(change, pairs)
            return change

    def _holder(self, candidates: list[Target]) -> Target | None:
        """The merged target of the lookup these candidates share (at most one is merged)."""
        return next((self._current[t.key] for t in candidates if t.key in self._current), None)

    @staticmethod
    def _winner(candidates: list[Target]) -> Target | None:
        """The first candidate; the others of another identity are logged as skipped."""
        if not candidates:
            return None
        first = candidates[0]
        for other in candidates[1:]:
            if other.key != first.key:
                skipped(first, other)
        return first

    def _commit(self, change: SetChange,
                pairs: dict[Key, tuple[Target | None, Target | None]]) -> None:
        for target in change.removed:
            del self._current[target.key]
            self.changes[("removed", target.source)] += 1
        for target in change.added:
            self._current[target.key] = target
            self.changes[("added", target.source)] += 1
            self._refused.discard(target.key)
        for target in change.changed:
            self._current[target.key] = target
        if self._lookups is not None:  # keep the registrations' conflict index current
            for lookup, (_, winner) in pairs.items():
                if self._candidates.has_api(lookup):
                    continue  # a registration of this lookup is what the index holds
                if winner is None:
                    self._lookups.pop(lookup, None)
                else:
                    self._lookups[lookup] = winner

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
                if item.target.key not in self._api:
                    self._candidates.registered(item.target)
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
        """Refuse a target of a known lookup under another identity, or of one named earlier in
        the same batch (both would otherwise join: two series of one task)."""
        known = self._lookup_index()
        batch: dict[Key, Target] = {}
        for index, target in enumerate(targets):
            for other in (known.get(target.lookup), batch.setdefault(target.lookup, target)):
                if other is not None and other.key != target.key:
                    raise TargetConflictError(f"targets[{index}]: " + duplicate_text(
                        f"the {other.source} target {other.id}", other, target))

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
            self._candidates.withdrawn(item.target)
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
                try:
                    self._store.delete([r.target.id for r in gone])
                except RegistrationStoreError as exc:  # dropped here all the same: the TTL
                    log.warning("%d expired registrations stay in the store until it answers "
                                "(a later expiry deletes them): %s", len(gone), exc)
            self._lookups = None
            for item in gone:
                del self._api[item.target.key]
                self._candidates.withdrawn(item.target)
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
            candidates = self._candidates.all()
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

    def current(self) -> list[Target]:
        """The merged set as it stands (after the last merge or change), without merging."""
        with self._lock:
            return list(self._current.values())

    def find(self, target_id: str) -> Target | None:
        """The current target with this id, or None."""
        with self._lock:
            return next((t for t in self._current.values() if t.id == target_id), None)


def _change(pairs: Iterable[tuple[Target | None, Target | None]]) -> SetChange:
    """The change of the merged set from (before, after) of each re-merged lookup."""
    added: list[Target] = []
    removed: list[Target] = []
    changed: list[Target] = []
    for old, new in pairs:
        if old is not None and (new is None or new.key != old.key):
            removed.append(old)
        if new is not None and (old is None or new.key != old.key):
            added.append(new)
        elif new is not None and not same(old, new):
            changed.append(new)
    return SetChange(tuple(added), tuple(removed), tuple(changed))
