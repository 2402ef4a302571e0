"""``trtc_exporter_dropped_series_total``: what the second line of defence left out; and
``trtc_exporter_storage_errors_total``: the store faults that refused or lost a write.

Everything that reaches a scrape was validated where it entered (config, target files, the
registration API, the database, API answers). If anything slips past — a row written into the
database by another tool, a bug — the one target is dropped from the answer and counted here,
and /metrics, /probe and the landing page still answer with the rest. A store that fails (a
registration database write refused, the relay's queue file, Redis) is logged where it happens
and counted by store, so an alert sees it without reading logs.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.errors import is_text
from trtc_exporter.exposition.families import family
from trtc_exporter.metrics import DropCounter, StorageErrors
from trtc_exporter.target import MAX_ID_CHARS, Target


def printable_target(target: Target, extra: tuple[str, ...] = ()) -> bool:
    """True when every label value the target brings is valid Unicode of a bounded length."""
    values = [*target.key, *(value for _, value in target.labels), *extra]
    return all(len(v) <= MAX_ID_CHARS and is_text(v) for v in values)


class DroppedCollector(Collector):
    """Renders the drop counts, every reason present (0 until something is dropped), and the
    storage fault counts, every store present."""

    def __init__(self, drops: DropCounter, storage: StorageErrors | None = None) -> None:
        self._drops = drops
        self._storage = storage or StorageErrors()

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Two counter families from the current counts."""
        dropped = family("trtc_exporter_dropped_series_total")
        for reason, count in self._drops.snapshot().items():
            dropped.add_metric([reason], float(count))
        yield dropped
        faults = family("trtc_exporter_storage_errors_total")
        for store, count in self._storage.snapshot().items():
            faults.add_metric([store], float(count))
        yield faults
