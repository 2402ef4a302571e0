"""Renders the poller's snapshot as Prometheus metric families; never calls the API, never raises.

``describe()`` is implemented so that registering the collector does not run ``collect()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.clock import Clock
from trtc_exporter.metrics import BY_NAME, Spec
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore, TargetState
from trtc_exporter.response import NOT_FOUND, STATES, UNKNOWN
from trtc_exporter.runtime import BUILD_INFO, Runtime
from trtc_exporter.targets.sources import TargetSources
from trtc_exporter.targets.targetset import CHANGES

log = logging.getLogger("trtc_exporter.collector")  # caller= stays as before
SOURCES = ("config", "file", "api")


def _family(name: str, extra: tuple[str, ...] = ()) -> Any:
    spec: Spec = BY_NAME[name]
    if spec.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.help, labels=spec.labels)
    return GaugeMetricFamily(name, spec.help, labels=spec.labels + extra)


def states_of(action: str) -> tuple[str, ...]:
    return STATES[action] + (UNKNOWN, NOT_FOUND)


class TranscriptionCollector(Collector):
    def __init__(self, store: StateStore, poller: Poller, budget: Budget, runtime: Runtime,
                 skew: SkewEstimator, clock: Clock, revision: str = "unknown",
                 only: Callable[[TargetState], bool] | None = None,
                 sources: TargetSources | None = None) -> None:
        self._only = only
        self._sources = sources
        self._store = store
        self._poller = poller
        self._budget = budget
        self._runtime = runtime
        self._skew = skew
        self._clock = clock
        self._revision = revision

    def describe(self) -> Iterator[Metric]:
        return iter(())

    def collect(self) -> Iterator[Metric]:
        if self._only is not None:
            yield from self._task_families()
            return
        try:
            families = self._task_families() + self._internal_families()
        except Exception:  # a rendering bug must not turn /metrics into a 500
            log.exception("collector failed; serving exporter health only")
            families = self._internal_families()
        yield from families

    # -- task data --------------------------------------------------------------------------
    def _task_families(self) -> list[Metric]:
        now = self._clock.time()
        states = sorted((s for s in self._store.snapshot() if self._only is None or self._only(s)),
                        key=lambda s: s.target.key)
        extra = tuple(sorted({name for s in states for name, _ in s.target.labels}))
        fam = {n: _family(n, extra) for n in (
            "trtc_ai_transcription_status", "trtc_ai_transcription_start_time_seconds",
            "trtc_ai_transcription_status_change_time_seconds", "trtc_ai_transcription_info",
            "trtc_ai_transcription_last_success_time_seconds",
            "trtc_ai_transcription_poll_success", "trtc_ai_transcription_running_seconds")}
        for state in states:
            self._add_task(fam, state, extra, now)
        return list(fam.values()) + self._app_families(states, now)

    def _add_task(self, fam: dict[str, Any], state: TargetState, extra: tuple[str, ...],
                  now: float) -> None:
        target = state.target
        own = dict(target.labels)
        ident = list(target.key) + [own.get(name, "") for name in extra]
        shown = state.shown_status(now)
        status_fam = fam["trtc_ai_transcription_status"]
        for status in states_of(target.action):
            status_fam.add_metric(list(target.key) + [status] + ident[5:],
                                  1.0 if status == shown else 0.0)
        if state.start_time is not None:
            fam["trtc_ai_transcription_start_time_seconds"].add_metric(ident, state.start_time)
        if state.status_change_time is not None:
            fam["trtc_ai_transcription_status_change_time_seconds"].add_metric(
                ident, state.status_change_time)
        fam["trtc_ai_transcription_info"].add_metric(
            list(target.key) + [state.resolved_task_id] + ident[5:], 1.0)
        fam["trtc_ai_transcription_last_success_time_seconds"].add_metric(ident, state.last_success)
        fam["trtc_ai_transcription_poll_success"].add_metric(ident, float(bool(state.poll_success)))
        if shown == "InProgress" and state.start_time is not None:
            fam["trtc_ai_transcription_running_seconds"].add_metric(
                ident, max(0.0, now - state.start_time))

    def _app_families(self, states: list[TargetState], now: float) -> list[Metric]:
        tasks = _family("trtc_ai_transcription_tasks")
        counts: dict[tuple[str, str, str], dict[str, int]] = {}
        for state in states:
            per_app = counts.setdefault(state.app_key, dict.fromkeys(
                states_of(state.target.action), 0))
            per_app[state.shown_status(now)] += 1
        for app_key, per_status in sorted(counts.items()):
            for status, count in per_status.items():
                tasks.add_metric([*app_key, status], float(count))
        usage = _family("trtc_ai_transcription_in_progress_seconds_total")
        translation = _family("trtc_ai_transcription_translation_seconds_total")
        observed, translated = self._store.usage(), self._store.translation_usage()
        for app_key in sorted(set(counts) | set(observed)):
            usage.add_metric(list(app_key), observed.get(app_key, 0.0))
            translation.add_metric(list(app_key), translated.get(app_key, 0.0))
        limits = _family("trtc_ai_transcription_concurrency_limit")
        config = self._runtime.config
        apps = {int(k[2]) for k in counts if k[2]} | set(config.apps)
        for app in sorted(apps):
            limits.add_metric([str(app)], float(config.app(app).max_concurrent_tasks))
        return [tasks, usage, translation, limits]

    # -- exporter health --------------------------------------------------------------------
    def _internal_families(self) -> list[Metric]:
        return self._budget_families() + self._poller_families() + self._runtime_families()

    def _budget_families(self) -> list[Metric]:
        rate, demand = _family("trtc_exporter_budget_rate"), _family(
            "trtc_exporter_budget_demand_rate")
        interval = _family("trtc_exporter_poll_interval_effective_seconds")
        needed, stretch = self._poller.demand, self._poller.stretch
        base = self._runtime.config.poll_interval
        for action, limiter in self._budget.items():
            rate.add_metric([action, "configured"], limiter.configured_rate)
            rate.add_metric([action, "effective"], limiter.effective_rate)
            demand.add_metric([action], needed.get(action, 0.0))
            interval.add_metric([action], base * stretch.get(action, 1.0))
        configured = _family("trtc_exporter_poll_interval_seconds")
        configured.add_metric([], base)
        return [rate, demand, interval, configured]

    def _poller_families(self) -> list[Metric]:
        stats = self._poller.stats
        targets = _family("trtc_exporter_targets")
        by_source = dict.fromkeys(SOURCES, 0)
        for target in self._poller.targets():
            by_source[target.source] = by_source.get(target.source, 0) + 1
        for source, count in by_source.items():
            targets.add_metric([source], float(count))
        out = [targets, *self._source_families()]
        for name, value in (("trtc_exporter_last_cycle_time_seconds", stats.last_cycle_time),
                            ("trtc_exporter_cycle_duration_seconds", stats.cycle_duration),
                            ("trtc_exporter_poller_last_progress_time_seconds",
                             stats.last_progress),
                            ("trtc_exporter_clock_skew_seconds", self._skew.seconds)):
            family = _family(name)
            family.add_metric([], value)
            out.append(family)
        return out

    def _source_families(self) -> list[Metric]:
        changes = _family("trtc_exporter_target_changes_total")
        files = _family("trtc_exporter_target_file_last_load_successful")
        if self._sources is not None:
            counted = dict(self._sources.set.changes)
            for change in CHANGES:
                for source in SOURCES:
                    changes.add_metric([change, source], float(counted.get((change, source), 0)))
            for path, state in sorted(self._sources.files.files.items()):
                files.add_metric([path], 1.0 if state.ok else 0.0)
        return [changes, files]

    def _runtime_families(self) -> list[Metric]:
        rt = self._runtime
        ok, when = _family("trtc_exporter_config_last_reload_successful"), _family(
            "trtc_exporter_config_last_reload_success_time_seconds")
        ok.add_metric([], 1.0 if rt.reload_successful else 0.0)
        when.add_metric([], rt.reload_success_time)
        creds = _family("trtc_exporter_credentials_source")
        if rt.credentials_source:
            creds.add_metric([rt.credentials_source], 1.0)
        pricing = _family("trtc_exporter_pricing_usd_per_minute")
        pricing.add_metric(["transcription"], rt.config.pricing.transcription_usd_per_minute)
        pricing.add_metric(["translation"], rt.config.pricing.translation_usd_per_minute)
        threshold = _family("trtc_exporter_cost_threshold_usd")
        for app, app_config in sorted(rt.config.apps.items()):
            if app_config.daily_cost_threshold_usd is not None:
                threshold.add_metric([str(app)], app_config.daily_cost_threshold_usd)
        shard = _family("trtc_exporter_shard")
        shard.add_metric([str(rt.shard_index), str(rt.shard_count)], 1.0)
        build = _family("trtc_exporter_build_info")
        build.add_metric([BUILD_INFO["version"], self._revision, BUILD_INFO["python_version"]], 1.0)
        return [ok, when, creds, pricing, threshold, shard, build]

