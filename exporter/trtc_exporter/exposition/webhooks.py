"""Families from TRTC event callbacks: per task (sentences, last sentence, silent), per app
(failed starts), and the listener's and relay's health.

Registered only when the callback listener is on (``--webhook.listen-address``), after every
other collector, so ``/metrics`` without webhooks is unchanged. Reads plain snapshots (target
states, ``WebhookStats``, ``ForwardStats``, failure counts); never calls the API, never raises.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.families import family
from trtc_exporter.exposition.guard import rendered
from trtc_exporter.generations import AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION
from trtc_exporter.metrics import BY_NAME
from trtc_exporter.polling.state import TargetState
from trtc_exporter.webhook.forward import DROP_REASONS, ForwardStats
from trtc_exporter.webhook.hub import WebhookStats
from trtc_exporter.webhook.silence import SilenceRule

log = logging.getLogger("trtc_exporter.collector")  # caller= as the other collectors
TASK_FAMILIES = ("trtc_ai_transcription_sentences_total",
                 "trtc_ai_transcription_last_sentence_time_seconds",
                 "trtc_ai_transcription_silent")
FORWARD_FAMILIES = ("trtc_exporter_webhook_forward_delivered_total",
                    "trtc_exporter_webhook_forward_attempt_failures_total",
                    "trtc_exporter_webhook_forward_dropped_total",
                    "trtc_exporter_webhook_forward_queued",
                    "trtc_exporter_webhook_forward_latency_seconds")
FAMILIES = TASK_FAMILIES + ("trtc_ai_transcription_start_failures_total",
                            "trtc_exporter_webhook_requests_total",
                            "trtc_exporter_webhook_last_event_time_seconds") + FORWARD_FAMILIES
"""Every family of this collector: only with the callback listener on (forward_* only with
``webhook.forward_to``)."""


class WebhookCollector(Collector):
    """``states`` the poller's snapshot, ``now`` wall-clock seconds, ``hub`` the listener's
    counters, ``failures`` failed starts by (api, sdk_app_id), ``rule`` the silence rule in
    force, ``forward`` the relay's snapshot (None without ``webhook.forward_to``)."""

    def __init__(self, states: Callable[[], list[TargetState]], now: Callable[[], WallSeconds],
                 hub: Callable[[], WebhookStats],
                 failures: Callable[[], dict[tuple[str, str], int]],
                 rule: Callable[[], SilenceRule],
                 forward: Callable[[], ForwardStats] | None = None,
                 apps: Callable[[], Iterable[int]] = tuple) -> None:
        """``apps``: the SdkAppIds of ``apps:`` in the config in force; with the apps of the
        targets they get a zero ``start_failures_total`` series before their first failure, so
        that ``increase()`` (and ``TrtcTaskStartFailures``) sees the first one too."""
        self._states, self._now, self._hub = states, now, hub
        self._failures, self._rule, self._forward = failures, rule, forward
        self._apps = apps

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families on every call; an error is logged and yields nothing."""
        yield from rendered(lambda: self._task_families() + self._health_families(), log,
                            "webhook collector failed")

    def _task_families(self) -> list[Metric]:
        now, rule = self._now(), self._rule()
        states = sorted(self._states(), key=lambda s: s.target.key)
        extra = tuple(sorted({name for s in states for name, _ in s.target.labels}))
        fam = {name: family(name, extra) for name in TASK_FAMILIES}
        for state in states:
            _add_task(fam, state, extra, now, rule)
        failures = family("trtc_ai_transcription_start_failures_total")
        counts = dict.fromkeys(self._known_apps(states), 0) | self._failures()
        for (api, app), count in sorted(counts.items()):
            failures.add_metric([api, app], float(count))
        return [*fam.values(), failures]

    def _known_apps(self, states: list[TargetState]) -> list[tuple[str, str]]:
        """(api, sdk_app_id) of every app the config or a target names, for both generations
        (an app may use either; a zero of the unused one costs one series)."""
        apps = {str(app) for app in self._apps()}
        apps |= {str(s.target.sdk_app_id) for s in states if s.target.sdk_app_id is not None}
        return [(api, app) for app in apps for api in (AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION)]

    def _health_families(self) -> list[Metric]:
        stats = self._hub()
        requests = family("trtc_exporter_webhook_requests_total")
        for result, count in stats.requests.items():
            requests.add_metric([result], float(count))
        last = family("trtc_exporter_webhook_last_event_time_seconds")
        last.add_metric([], stats.last_event_time)
        out = [requests, last]
        if self._forward is not None:
            out += _forward_families(self._forward())
        return out


def _add_task(fam: dict[str, Any], state: TargetState, extra: tuple[str, ...],
              now: WallSeconds, rule: SilenceRule) -> None:
    own = dict(state.target.labels)
    ident = list(state.target.key) + [own.get(name, "") for name in extra]
    fam["trtc_ai_transcription_sentences_total"].add_metric(ident, float(state.sentences))
    if state.last_sentence is not None:
        fam["trtc_ai_transcription_last_sentence_time_seconds"].add_metric(
            ident, state.last_sentence)
    fam["trtc_ai_transcription_silent"].add_metric(ident, 1.0 if _silent(state, now, rule)
                                                   else 0.0)


def _silent(state: TargetState, now: WallSeconds, rule: SilenceRule) -> bool:
    """Judged only for tasks a callback has mentioned (others may belong to an app whose
    callbacks are not configured, where no sentence would ever arrive), and only over the time
    since the first such callback: before it nobody was listening for sentences."""
    if not state.first_event or state.shown_status(now) != "InProgress":
        return False
    since = state.start_time if state.start_time is not None else state.status_change_time
    return rule.is_silent(max(since or 0.0, state.first_event), state.last_sentence, now)


def _forward_families(stats: ForwardStats) -> list[Metric]:
    delivered = family("trtc_exporter_webhook_forward_delivered_total")
    delivered.add_metric([], float(stats.delivered))
    failures = family("trtc_exporter_webhook_forward_attempt_failures_total")
    failures.add_metric([], float(stats.attempt_failures))
    dropped = family("trtc_exporter_webhook_forward_dropped_total")
    for reason in DROP_REASONS:
        dropped.add_metric([reason], float(stats.dropped.get(reason, 0)))
    queued = family("trtc_exporter_webhook_forward_queued")
    queued.add_metric([], float(stats.queued))
    name = "trtc_exporter_webhook_forward_latency_seconds"
    latency = HistogramMetricFamily(name, BY_NAME[name].help)
    buckets = [(str(bound), float(count)) for bound, count in stats.latency_buckets]
    latency.add_metric([], buckets + [("+Inf", float(stats.latency_count))], stats.latency_sum)
    return [delivered, failures, dropped, queued, latency]
