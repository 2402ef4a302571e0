"""The due-time queue of the poller: a heap of (due, seq, key) with lazy removal.

Pure data structure on plain floats, so fairness and phase spread are tested without threads.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools

Key = tuple[str, ...]


def phase(key: Key) -> float:
    """A stable fraction in [0, 1) per target, so a restart or reload keeps each target's slot."""
    digest = hashlib.sha256("\x00".join(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def spread(keys: list[Key]) -> dict[Key, float]:
    """Even offsets in [0, 1): targets ordered by their stable phase, then spaced by 1/n."""
    ordered = sorted(keys, key=phase)
    return {key: i / len(ordered) for i, key in enumerate(ordered)}


class Schedule:
    """The due queue: target keys by next due time (monotonic seconds), first spread over the
    interval by a stable hash so that polls do not bunch."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Key]] = []
        self._due: dict[Key, float] = {}
        self._seq = itertools.count()

    def __contains__(self, key: Key) -> bool:
        return key in self._due

    def __len__(self) -> int:
        return len(self._due)

    def set(self, key: Key, due: float) -> None:
        """(Re)schedule key at due; an older entry for it becomes stale and is skipped."""
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))

    def remove(self, key: Key) -> None:
        """Forget ``key`` (its stale heap entry is dropped lazily)."""
        self._due.pop(key, None)

    def hold(self, key: Key) -> float | None:
        """Take a key out while it is being polled (it returns with :meth:`set`); its due time."""
        return self._due.pop(key, None)

    def due_at(self, key: Key) -> float | None:
        """When ``key`` is due (monotonic s), or None when it is not scheduled."""
        return self._due.get(key)

    def next_due(self) -> float | None:
        """The earliest due time (monotonic s), or None when nothing is scheduled."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def peek(self) -> tuple[float, Key] | None:
        """The earliest (due time, key), left in place; None when nothing is scheduled."""
        self._drop_stale()
        return (self._heap[0][0], self._heap[0][2]) if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[Key, float]]:
        """Keys whose time has come with their due time, earliest first (nobody starves)."""
        out: list[tuple[Key, float]] = []
        while self._heap and (limit is None or len(out) < limit):
            self._drop_stale()
            if not self._heap or self._heap[0][0] > now:
                break
            due, _, key = heapq.heappop(self._heap)
            del self._due[key]
            out.append((key, due))
        return out

    def _drop_stale(self) -> None:
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) == due:
                return
            heapq.heappop(self._heap)
        if len(self._heap) > 4 * len(self._due) + 64:
            self._compact()

    def _compact(self) -> None:
        self._heap = [(d, s, k) for d, s, k in self._heap if self._due.get(k) == d]
        heapq.heapify(self._heap)
