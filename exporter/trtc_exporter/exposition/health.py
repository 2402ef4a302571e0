"""The budget and the poller: rates, demand, effective intervals, targets, cycles, skew.

Reads the budget's limiters and the poller's counters; never calls the API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.config.model import Config
from trtc_exporter.exposition.families import SOURCES, WEBHOOK_SOURCE, family
from trtc_exporter.polling.planning import split_lane
from trtc_exporter.polling.poller import Poller
from trtc_exporter.targets.sources import TargetSources
from trtc_exporter.targets.targetset import CHANGES


class BudgetPollerCollector(Collector):
    """Budget rates (req/s), demand (req/s), effective and base intervals (s), target counts,
    target-set changes, target-file health, cycle times (wall-clock s) and clock skew (s)."""

    def __init__(self, budget: Budget, poller: Poller, skew: SkewEstimator,
                 config: Callable[[], Config], sources: TargetSources | None = None, *,
                 webhooks: bool = False, accounts: bool = False) -> None:
        """``webhooks``: the callback listener is on, so source ``webhook`` is shown too;
        ``accounts``: label budget families by account (set when ``accounts:`` is)."""
        self._sources_shown = SOURCES + ((WEBHOOK_SOURCE,) if webhooks else ())
        self._accounts = accounts
        self._budget = budget
        self._poller = poller
        self._skew = skew
        self._config = config
        self._sources = sources

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families on every call, read from the budget and the poller."""
        yield from self._budget_families() + self._poller_families()

    def _budget_families(self) -> list[Metric]:
        accounts = self._accounts
        rate = family("trtc_exporter_budget_rate", accounts=accounts)
        demand = family("trtc_exporter_budget_demand_rate", accounts=accounts)
        interval = family("trtc_exporter_poll_interval_effective_seconds", accounts=accounts)
        needed = self._poller.demand
        for lane, limiter in self._budget.items():
            account, action = split_lane(lane)
            labels = [account, action] if accounts else [action]
            rate.add_metric([*labels, "configured"], limiter.configured_rate)
            rate.add_metric([*labels, "effective"], limiter.effective_rate)
            demand.add_metric(labels, needed.get(lane, 0.0))
            interval.add_metric(labels, self._poller.effective_interval(lane))
        configured = family("trtc_exporter_poll_interval_seconds")
        configured.add_metric([], self._config().poll_interval)
        return [rate, demand, interval, configured]

    def _poller_families(self) -> list[Metric]:
        stats = self._poller.stats
        targets = family("trtc_exporter_targets")
        by_source = dict.fromkeys(self._sources_shown, 0)
        for target in self._poller.targets():
            by_source[target.source] = by_source.get(target.source, 0) + 1
        for source, count in by_source.items():
            targets.add_metric([source], float(count))
        out = [targets, *self._source_families()]
        for name, value in (("trtc_exporter_last_cycle_time_seconds", stats.last_cycle_time),
                            ("trtc_exporter_cycle_duration_seconds", stats.cycle_duration),
                            ("trtc_exporter_poller_last_progress_time_seconds",
                             stats.last_progress),
                            ("trtc_exporter_poll_overdue_seconds",
                             self._poller.overdue_seconds()),
                            ("trtc_exporter_clock_skew_seconds", self._skew.seconds)):
            metric = family(name)
            metric.add_metric([], value)
            out.append(metric)
        return out

    def _source_families(self) -> list[Metric]:
        changes = family("trtc_exporter_target_changes_total")
        files = family("trtc_exporter_target_file_last_load_successful")
        if self._sources is not None:
            counted = self._sources.changes()
            for change in CHANGES:
                for source in self._sources_shown:
                    changes.add_metric([change, source], float(counted.get((change, source), 0)))
            for path, ok in sorted(self._sources.file_status().items()):
                files.add_metric([path], 1.0 if ok else 0.0)
        return [changes, files]
