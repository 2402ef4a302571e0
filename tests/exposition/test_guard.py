"""A rendering collector that fails yields nothing for that scrape and logs why; the rest of the
registry is still served."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.guard import rendered
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.polling.state import TargetState


def test_rendered_returns_the_families() -> None:
    """Without an error the rendered families come back unchanged."""
    metric = GaugeMetricFamily("x", "help")
    assert rendered(lambda: [metric], logging.getLogger("t"), "failed") == [metric]


def test_rendered_logs_and_yields_nothing_on_error(caplog: pytest.LogCaptureFixture) -> None:
    """An exception becomes an empty list and one error line under the collector's logger."""
    def boom() -> list[Metric]:
        raise RuntimeError("bug")

    with caplog.at_level(logging.ERROR):
        assert rendered(boom, logging.getLogger("trtc_exporter.collector"), "it failed") == []
    assert [(r.name, r.getMessage()) for r in caplog.records] == [
        ("trtc_exporter.collector", "it failed")]
    assert caplog.records[0].exc_info is not None


def test_a_failing_collector_leaves_the_registry_servable() -> None:
    """A TaskCollector whose snapshot raises adds nothing, and the other collectors render."""
    def states() -> list[TargetState]:
        raise RuntimeError("snapshot bug")

    registry = CollectorRegistry()
    registry.register(TaskCollector(states, lambda: WallSeconds(0.0)))
    registry.register(_Fixed())
    assert generate_latest(registry) == (
        b"# HELP up_value help\n# TYPE up_value gauge\nup_value 1.0\n")


class _Fixed:
    """One constant gauge: the rest of the registry."""

    def collect(self) -> list[Metric]:
        metric = GaugeMetricFamily("up_value", "help")
        metric.add_metric([], 1.0)
        return [metric]
