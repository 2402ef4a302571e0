"""Every source's targets in merge order, indexed so that one lookup can be merged on its own.

The merged set (:class:`~trtc_exporter.targets.targetset.TargetSet`) keeps, for each lookup
(:attr:`Target.lookup`), the first target of that lookup in the order config, target files (by
path), registrations. That winner depends only on the first target of the lookup in each source,
so a target-file edit re-merges only the lookups it touched: :meth:`Candidates.of` answers in
O(number of files) from indexes built once per file content (O(file), as reading it is).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from trtc_exporter.target import Target, duplicate_text
from trtc_exporter.targets.registrations import Registered

log = logging.getLogger("trtc_exporter.targetset")  # the merge's messages, as before
Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetChange:
    """How the merged set changed: targets that joined, left (as they were) and changed (same
    identity, new labels, interval, translation, account or source). ``whole``: the change is
    not known piecewise and the set must be merged and applied whole."""

    added: tuple[Target, ...] = ()
    removed: tuple[Target, ...] = ()
    changed: tuple[Target, ...] = ()
    whole: bool = False

    def __bool__(self) -> bool:
        return self.whole or bool(self.added or self.removed or self.changed)


def same(a: Target | None, b: Target | None) -> bool:
    """True when ``a`` and ``b`` are the same target in every field, source included."""
    if a is None or b is None:
        return a is b
    return a is b or (a == b and a.source == b.source)


def firsts(targets: Iterable[Target], warn: bool = False) -> dict[Key, Target]:
    """The first target of each lookup, in order; with ``warn`` each later one of another
    identity is logged as skipped (the same message the whole merge logs)."""
    index: dict[Key, Target] = {}
    for target in targets:
        first = index.setdefault(target.lookup, target)
        if warn and first is not target and first.key != target.key:
            skipped(first, target)
    return index


def skipped(first: Target, target: Target) -> None:
    """Log that ``target`` is left out because ``first`` watches the same task."""
    log.warning("%s target %s skipped: %s", target.source, target.id,
                duplicate_text(f"{first.source} target {first.id}", first, target))


def touched(before: Mapping[Key, Target], after: Mapping[Key, Target]) -> set[Key]:
    """The lookups whose first target differs between two indexes of one source."""
    found = before.keys() ^ after.keys()
    for lookup, new in after.items():  # the O(file) part of an edit: kept to one loop
        old = before.get(lookup)
        if old is not None and old is not new and (old != new or old.source != new.source):
            found.add(lookup)
    return found


class Candidates:
    """The sources of the merged set: config targets, target files by path (kept in path order)
    and registrations (``api``, by key in registration order; the owner edits it and reports
    each new or departed key to :meth:`registered` / :meth:`withdrawn`). Not thread-safe: the
    owner holds its lock."""

    def __init__(self) -> None:
        self.config: tuple[Target, ...] = ()
        self.files: dict[str, tuple[Target, ...]] = {}
        self.api: dict[Key, Registered] = {}
        self._config_firsts: dict[Key, Target] | None = None
        self._file_firsts: dict[str, dict[Key, Target]] = {}
        self._api_keys: dict[Key, list[Key]] | None = None  # lookup -> keys, in _api order

    def all(self) -> list[Target]:
        """Every candidate in merge order: config, files (path order), registrations."""
        return [*self.config, *(t for ts in self.files.values() for t in ts),
                *(r.target for r in self.api.values())]

    def set_config(self, targets: Sequence[Target]) -> None:
        """Replace the config targets (the index is rebuilt when first needed)."""
        new = tuple(targets)
        if new is not self.config:
            self.config, self._config_firsts = new, None

    def edited(self, files: Mapping[str, Sequence[Target]]) -> list[str]:
        """The paths whose targets in ``files`` are not the very tuple held now (edited, new or
        gone files; the watcher keeps an unchanged file's tuple): O(number of files)."""
        return sorted(p for p in files.keys() | self.files.keys()
                      if files.get(p) is not self.files.get(p))

    def set_files(self, files: Mapping[str, Sequence[Target]]) -> None:
        """Replace the target files (path -> targets). The indexes of :meth:`edited` paths are
        rebuilt when first needed; an unchanged file keeps its index."""
        for path in self.edited(files):
            self._file_firsts.pop(path, None)
        self.files = {path: tuple(files[path]) for path in sorted(files)}

    def file_firsts(self, path: str) -> dict[Key, Target]:
        """The first target of each lookup in one target file (empty for an unknown path)."""
        index = self._file_firsts.get(path)
        if index is None:
            index = self._file_firsts[path] = firsts(self.files.get(path, ()))
        return index

    def use_file_firsts(self, path: str, index: dict[Key, Target]) -> None:
        """Adopt an index of the current content of ``path`` built by the caller."""
        if path in self.files:
            self._file_firsts[path] = index

    def set_api(self, api: dict[Key, Registered]) -> None:
        """Use this table of registrations (after loading a store)."""
        self.api, self._api_keys = api, None

    def registered(self, target: Target) -> None:
        """A key new to ``api`` (appended at its end)."""
        if self._api_keys is not None:
            self._api_keys.setdefault(target.lookup, []).append(target.key)

    def withdrawn(self, target: Target) -> None:
        """A key that left ``api``."""
        if self._api_keys is None:
            return
        keys = self._api_keys.get(target.lookup, [])
        if target.key in keys:
            keys.remove(target.key)
            if not keys:
                del self._api_keys[target.lookup]

    def has_api(self, lookup: Key) -> bool:
        """True when a registration watches this lookup."""
        return lookup in self._api_index()

    def of(self, lookup: Key) -> list[Target]:
        """The first target of ``lookup`` in each source that has one, in merge order (the
        first of them wins the merge): O(number of target files)."""
        if self._config_firsts is None:
            self._config_firsts = firsts(self.config)
        found = [self._config_firsts.get(lookup),
                 *(self.file_firsts(path).get(lookup) for path in self.files)]
        keys = self._api_index().get(lookup)
        if keys:
            found.append(self.api[keys[0]].target)
        return [t for t in found if t is not None]

    def _api_index(self) -> dict[Key, list[Key]]:
        if self._api_keys is None:
            self._api_keys = {}
            for key, item in self.api.items():
                self._api_keys.setdefault(item.target.lookup, []).append(key)
        return self._api_keys
