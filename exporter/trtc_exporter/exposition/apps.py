"""Per-application totals: tasks per status, in-progress and translation seconds, quota.

Only ``/metrics`` registers this collector; ``/probe`` answers for one target and must not
repeat every application's totals (summing a probe job and the main job would double them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.clock import WallSeconds
from trtc_exporter.config.model import Config
from trtc_exporter.exposition.dropped import printable_target
from trtc_exporter.exposition.families import family, states_of
from trtc_exporter.exposition.guard import rendered
from trtc_exporter.polling.state import StateStore, TargetState, UsageKey
from trtc_exporter.target import Target

log = logging.getLogger("trtc_exporter.collector")  # caller= stays as before


class AppCollector(Collector):
    """Totals per (api, region, sdk_app_id) from the state store and the apps config.

    ``config`` returns the running config (it changes on reload), ``now`` wall-clock seconds.
    Seconds totals are counters of observed InProgress time (wall clock) kept by the store.
    """

    def __init__(self, store: StateStore, config: Callable[[], Config],
                 now: Callable[[], WallSeconds], accounts: bool = False,
                 states: Callable[[], list[TargetState]] | None = None) -> None:
        """``accounts``: label usage by account; ``states``: the records the task counts come
        from (default the store's own; with coordination, every replica's targets)."""
        self._store = store
        self._config = config
        self._now = now
        self._accounts = accounts
        self._states = states or store.snapshot
        # the Target objects found printable / not, by key (a target, not a (target, bool)
        # pair: 56 B less a target at 10 000 targets, issue 16)
        self._checked: tuple[dict[tuple[str, ...], Target], dict[tuple[str, ...], Target]] = ({},
                                                                                           {})

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families on every call; an error is logged and yields nothing."""
        yield from rendered(self._families, log, "collector failed; serving exporter health only")

    def _printable(self, target: Target) -> bool:
        """printable_target, checked once per Target object (targets are immutable; a scrape
        at 10 000 targets would otherwise spend most of its time here)."""
        good, bad = self._checked
        key = target.key
        if good.get(key) is target:
            return True
        if bad.get(key) is target:
            return False
        printable = printable_target(target)
        (good if printable else bad)[key] = target
        (bad if printable else good).pop(key, None)
        return printable

    def _families(self) -> list[Metric]:
        now = self._now()
        tasks = family("trtc_ai_transcription_tasks")
        counts: dict[tuple[str, str, str], dict[str, int]] = {}
        snapshot = self._states()
        if sum(map(len, self._checked)) > 2 * len(snapshot) + 64:  # forget targets that left
            keys = {s.target.key for s in snapshot}
            self._checked = ({k: t for k, t in self._checked[0].items() if k in keys},
                             {k: t for k, t in self._checked[1].items() if k in keys})
        states = [s for s in snapshot if self._printable(s.target)]
        for state in states:  # the families are sorted below: no need to sort 10 000 states
            per_app = counts.get(app_key := state.app_key)
            if per_app is None:  # (setdefault would build the default dict for every state)
                per_app = counts[app_key] = dict.fromkeys(states_of(state.target.action), 0)
            per_app[state.shown_status(now)] += 1
        for app_key, per_status in sorted(counts.items()):
            for status, count in per_status.items():
                tasks.add_metric([*app_key, status], float(count))
        usage, translation = self._usage({s.usage_key for s in states})
        limits = family("trtc_ai_transcription_concurrency_limit")
        config = self._config()
        apps = {int(k[2]) for k in counts if k[2]} | set(config.apps)
        for app in sorted(apps):
            limits.add_metric([str(app)], float(config.app(app).max_concurrent_tasks))
        return [tasks, usage, translation, limits]

    def _usage(self, seen: set[UsageKey]) -> tuple[Metric, Metric]:
        """Observed seconds per app (and account with ``accounts:``); zero for apps without."""
        usage = family("trtc_ai_transcription_in_progress_seconds_total", accounts=self._accounts)
        translation = family("trtc_ai_transcription_translation_seconds_total",
                             accounts=self._accounts)
        observed, translated = self._store.usage(), self._store.translation_usage()
        for key in sorted(seen | set(observed)):
            labels = [key[3], *key[:3]] if self._accounts else list(key[:3])
            usage.add_metric(labels, observed.get(key, 0.0))
            translation.add_metric(labels, translated.get(key, 0.0))
        return usage, translation
