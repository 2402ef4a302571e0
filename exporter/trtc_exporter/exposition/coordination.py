"""The coordination families: Redis reachable, live members, targets this replica owns.

Registered only when ``coordination.redis_url`` is set, so an embedded exporter's /metrics is
unchanged. Reads the coordinator's last values; never calls Redis at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.coordination.coordinator import Coordinator
from trtc_exporter.exposition.families import family


class CoordinationCollector(Collector):
    """``trtc_exporter_coordination_up`` (0/1), ``…_members`` and ``trtc_exporter_targets_owned``
    (counts), from the :class:`Coordinator`'s last heartbeat and division."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Three gauges without labels."""
        c = self._coordinator
        for name, value in (("trtc_exporter_coordination_up", c.up()),
                            ("trtc_exporter_coordination_members", c.member_count()),
                            ("trtc_exporter_targets_owned", c.targets_owned())):
            metric = family(name)
            metric.add_metric([], value)
            yield metric
