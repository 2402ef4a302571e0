"""Every metric name, type, HELP text and label set the exporter exposes, declared once.

Dashboards, alert rules and tests check their queries against :data:`ALL_METRIC_NAMES`, so a
renamed metric breaks a test instead of a user's dashboard.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from trtc_exporter.target import IDENTITY_LABELS

CACHED = " Cached from the last background poll; a scrape never calls the API."
CALLBACK = " From TRTC event callbacks (--webhook.listen-address); a scrape never calls the API."


@dataclass(frozen=True, slots=True)
class Spec:
    """One declared metric: name, type (gauge, counter, histogram), HELP text and label names."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()


TASK = IDENTITY_LABELS
APP = ("api", "region", "sdk_app_id")
SPECS: tuple[Spec, ...] = (
    Spec("trtc_ai_transcription_status", "gauge",
         "Task status as a StateSet: 1 for the current status, 0 for the others." + CACHED,
         TASK + ("status",)),
    Spec("trtc_ai_transcription_start_time_seconds", "gauge",
         "Task StartTime as Unix seconds (1.0 StartTime read as UTC+8)." + CACHED, TASK),
    Spec("trtc_ai_transcription_status_change_time_seconds", "gauge",
         "Unix time at which the exporter last observed a status transition." + CACHED, TASK),
    Spec("trtc_ai_transcription_info", "gauge",
         "Always 1; resolved_task_id is the TaskId the API returned for the target." + CACHED,
         TASK + ("resolved_task_id",)),
    Spec("trtc_ai_transcription_last_success_time_seconds", "gauge",
         "Unix time of the last poll that returned the task's status (NotFound answers do not "
         "count), 0 before the first." + CACHED,
         TASK),
    Spec("trtc_ai_transcription_poll_success", "gauge",
         "1 if the last poll of the target succeeded (NotFound counts as an answer), else 0."
         + CACHED, TASK),
    Spec("trtc_ai_transcription_tasks", "gauge",
         "Number of targets per status, per application." + CACHED, APP + ("status",)),
    Spec("trtc_ai_transcription_in_progress_seconds_total", "counter",
         "Transcription time observed between consecutive polls that both saw InProgress."
         + CACHED, APP),
    Spec("trtc_ai_transcription_translation_seconds_total", "counter",
         "The part of in_progress_seconds_total spent by targets configured with "
         "translation: true (billed at the translation price on top)." + CACHED, APP),
    Spec("trtc_ai_transcription_running_seconds", "gauge",
         "Seconds since StartTime for targets InProgress (absent otherwise)." + CACHED, TASK),
    Spec("trtc_ai_transcription_concurrency_limit", "gauge",
         "Configured concurrent task quota of the application (apps.<id>.max_concurrent_tasks).",
         ("sdk_app_id",)),
    Spec("trtc_ai_transcription_sentences_total", "counter",
         "Complete sentences (TRTC callbacks 903/1403) received for the task; never the text."
         + CALLBACK, TASK),
    Spec("trtc_ai_transcription_last_sentence_time_seconds", "gauge",
         "EventMsTs of the task's last complete sentence callback, as Unix seconds." + CALLBACK,
         TASK),
    Spec("trtc_ai_transcription_silent", "gauge",
         "1 if the task is InProgress for longer than webhook.silence_after with no sentence "
         "callback in that time (audio missing, wrong user or language), else 0. Tasks no "
         "callback has mentioned yet are 0." + CALLBACK, TASK),
    Spec("trtc_ai_transcription_start_failures_total", "counter",
         "Task starts TRTC reported as failed (callback 901/1401 with Payload.Status 1), per "
         "application." + CALLBACK, ("api", "sdk_app_id")),
    Spec("trtc_api_requests_total", "counter",
         "API requests sent, every attempt and retry included.", ("action", "region")),
    Spec("trtc_api_request_duration_seconds", "histogram",
         "Latency of API requests, every attempt and retry included.", ("action", "region")),
    Spec("trtc_api_errors_total", "counter",
         "Failed API attempts by Tencent Error.Code or transport code (bounded set, else Other).",
         ("action", "region", "code")),
    Spec("trtc_api_throttled_total", "counter",
         "RequestLimitExceeded answers.", ("action", "region")),
    Spec("trtc_api_retries_total", "counter",
         "Retried API attempts (each retry spends budget).", ("action", "region")),
    Spec("trtc_exporter_budget_rate", "gauge",
         "Request budget in requests/s: kind=configured (after budget_share) or effective "
         "(after adaptive throttling).", ("action", "kind")),
    Spec("trtc_exporter_budget_demand_rate", "gauge",
         "Requests/s the current target set needs at its planned intervals.", ("action",)),
    Spec("trtc_exporter_budget_wait_seconds", "histogram",
         "Time a request waited for a budget token.", ("action",)),
    Spec("trtc_exporter_poll_interval_seconds", "gauge", "Configured poll_interval."),
    Spec("trtc_exporter_poll_interval_effective_seconds", "gauge",
         "Base poll interval after capacity planning (stretched when demand exceeds budget).",
         ("action",)),
    Spec("trtc_exporter_targets", "gauge", "Monitored targets by source.", ("source",)),
    Spec("trtc_exporter_target_changes_total", "counter",
         "Target set changes by source: added, removed (expired ones included), expired "
         "(registration TTL), refused (max_targets reached).", ("change", "source")),
    Spec("trtc_exporter_target_file_last_load_successful", "gauge",
         "1 if the last read of the target file succeeded; 0 while its last good contents "
         "stay in force.", ("path",)),
    Spec("trtc_exporter_last_cycle_time_seconds", "gauge",
         "Unix time at which the poller last completed a full pass over all targets."),
    Spec("trtc_exporter_cycle_duration_seconds", "gauge",
         "Duration of the last full pass over all targets."),
    Spec("trtc_exporter_poller_last_progress_time_seconds", "gauge",
         "Unix time of the poller's last completed poll."),
    Spec("trtc_exporter_poll_overdue_seconds", "gauge",
         "How late the most overdue poll is: now minus the earliest due time of a poll not "
         "finished yet, 0 when none is late (the watchdog of /-/healthy)."),
    Spec("trtc_exporter_config_last_reload_successful", "gauge",
         "1 if the last configuration load succeeded."),
    Spec("trtc_exporter_config_last_reload_success_time_seconds", "gauge",
         "Unix time of the last successful configuration load."),
    Spec("trtc_exporter_clock_skew_seconds", "gauge",
         "Smoothed server Date minus local clock, from API responses."),
    Spec("trtc_exporter_credentials_source", "gauge",
         "1 for the source the credentials come from (never the value).", ("source",)),
    Spec("trtc_exporter_pricing_usd_per_minute", "gauge",
         "Configured list price used for cost estimates.", ("kind",)),
    Spec("trtc_exporter_cost_threshold_usd", "gauge",
         "Configured daily estimated-cost alert threshold per application.", ("sdk_app_id",)),
    Spec("trtc_exporter_shard", "gauge",
         "Which shard of the target set this replica polls (index of count).",
         ("index", "count")),
    Spec("trtc_exporter_webhook_requests_total", "counter",
         "Requests to POST /webhook/trtc by result: applied, duplicate, conversational_ai, "
         "unknown_event (answered 200) or the reason of a refusal (bad_signature, stale, ...).",
         ("result",)),
    Spec("trtc_exporter_webhook_last_event_time_seconds", "gauge",
         "Unix time of the last verified TRTC callback (the listener's start before the first)."),
    Spec("trtc_exporter_webhook_forward_delivered_total", "counter",
         "Verified callbacks relayed to webhook.forward_to and answered 2xx."),
    Spec("trtc_exporter_webhook_forward_attempt_failures_total", "counter",
         "Relay attempts that failed (connection error, timeout or non-2xx); each is retried "
         "with backoff."),
    Spec("trtc_exporter_webhook_forward_dropped_total", "counter",
         "Callbacks never relayed: reason expired (retry window over), queue_full or storage "
         "(queue file fault).", ("reason",)),
    Spec("trtc_exporter_webhook_forward_queued", "gauge",
         "Callbacks waiting in the forward queue."),
    Spec("trtc_exporter_webhook_forward_latency_seconds", "histogram",
         "Time from receiving a callback to the downstream server's 2xx, retries included."),
    Spec("trtc_exporter_build_info", "gauge", "Always 1; build metadata.",
         ("version", "revision", "python_version")),
    Spec("trtc_exporter_coordination_up", "gauge",
         "1 while this replica reaches the coordination Redis, 0 while it runs on its fallback "
         "(a static share of the budget, its own targets). Only with coordination.redis_url."),
    Spec("trtc_exporter_coordination_members", "gauge",
         "Live replicas of this coordination cluster (heartbeats within the TTL; the last known "
         "count while Redis is unreachable). Only with coordination.redis_url."),
    Spec("trtc_exporter_targets_owned", "gauge",
         "Targets this replica polls: those whose rendezvous owner among the live members it "
         "is. Only with coordination.redis_url."),
    Spec("trtc_exporter_dropped_series_total", "counter",
         "Targets left out instead of failing a whole answer: reason=invalid_text (an id or "
         "label that is not valid Unicode or too long reached a scrape), render_error (rendering "
         "one target failed), stored_row (an unreadable registration database row).",
         ("reason",)),
    Spec("trtc_exporter_storage_errors_total", "counter",
         "Storage faults, each also logged: store=registrations (the SQLite registration "
         "database could not be written; the registration API answered 503), forward_queue "
         "(the webhook relay's SQLite queue could not be read or written), redis (the "
         "coordination Redis refused or failed a shared-registration write or read).",
         ("store",)),
)
BY_NAME = {spec.name: spec for spec in SPECS}
ACCOUNT_LABELLED = frozenset({
    "trtc_api_requests_total", "trtc_api_request_duration_seconds", "trtc_api_errors_total",
    "trtc_api_throttled_total", "trtc_api_retries_total", "trtc_exporter_budget_rate",
    "trtc_exporter_budget_demand_rate", "trtc_exporter_budget_wait_seconds",
    "trtc_exporter_poll_interval_effective_seconds",
    "trtc_ai_transcription_in_progress_seconds_total",
    "trtc_ai_transcription_translation_seconds_total"})
"""Families that gain a leading ``account`` label when ``accounts:`` is configured (budget, API
and usage families); without ``accounts:`` their label sets are exactly those of SPECS."""


def labels_of(name: str, accounts: bool) -> tuple[str, ...]:
    """The label names of a family: ``account`` first when ``accounts`` and it is per account."""
    spec = BY_NAME[name]
    return ("account", *spec.labels) if accounts and name in ACCOUNT_LABELLED else spec.labels
ALL_METRIC_NAMES = frozenset(BY_NAME)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 3.0, 5.0, 6.0, 10.0)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


M = TypeVar("M", Counter, Histogram)


class Bound(Generic[M]):
    """An instrument with its leading label values (the account) already given."""

    def __init__(self, metric: M, prefix: tuple[str, ...] = ()) -> None:
        self.metric: M = metric
        self._prefix = prefix
        # the client labels every attempt: client_python's labels() validates, joins and locks
        # each time; children are never removed here, so a child once made is kept
        self._children: dict[tuple[str, ...], M] = {}

    def labels(self, *values: str) -> M:
        """The child for the remaining label values (as ``Counter.labels``)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.metric.labels(*self._prefix, *values)
        return child

    def bound(self, prefix: tuple[str, ...]) -> Bound[M]:
        """The same instrument with ``prefix`` as its leading label values."""
        return Bound[M](self.metric, prefix)


def _counter(registry: CollectorRegistry, name: str, accounts: bool) -> Bound[Counter]:
    return Bound(Counter(name.removesuffix("_total"), BY_NAME[name].help,
                         labels_of(name, accounts), registry=registry))


def _histogram(registry: CollectorRegistry, name: str, buckets: tuple[float, ...],
               accounts: bool) -> Bound[Histogram]:
    return Bound(Histogram(name, BY_NAME[name].help, labels_of(name, accounts),
                           registry=registry, buckets=buckets))


DROP_REASONS = ("invalid_text", "render_error", "stored_row")
STORAGE_STORES = ("registrations", "forward_queue", "redis")


class Tally:
    """Thread-safe counts for a fixed set of label values, every value present from the start
    (rendered as a counter family by a collector)."""

    def __init__(self, keys: tuple[str, ...]) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(keys, 0)

    def add(self, key: str, count: int = 1) -> None:
        """Count ``count`` for ``key`` (one of the keys given at construction)."""
        with self._lock:
            self._counts[key] += count

    def snapshot(self) -> dict[str, int]:
        """Counts by key, every key present."""
        with self._lock:
            return dict(self._counts)


class DropCounter(Tally):
    """Counts of dropped targets by reason (:data:`DROP_REASONS`); the second line of defence
    behind validation at every entrance, rendered by exposition/dropped."""

    def __init__(self) -> None:
        super().__init__(DROP_REASONS)


class StorageErrors(Tally):
    """Counts of storage faults by store (:data:`STORAGE_STORES`), counted where each is logged;
    rendered by exposition/dropped as ``trtc_exporter_storage_errors_total``."""

    def __init__(self) -> None:
        super().__init__(STORAGE_STORES)


class ApiMetrics:
    """Live instruments updated by the client on every attempt (our own instrumentation).

    With ``accounts`` every instrument has a leading ``account`` label; :meth:`for_account`
    gives each account's client a view with that label filled in.
    """

    def __init__(self, registry: CollectorRegistry | None, accounts: bool = False) -> None:
        if registry is None:  # for_account's copy: instruments assigned by the caller
            return
        self.requests = _counter(registry, "trtc_api_requests_total", accounts)
        self.duration = _histogram(registry, "trtc_api_request_duration_seconds",
                                   LATENCY_BUCKETS, accounts)
        self.errors = _counter(registry, "trtc_api_errors_total", accounts)
        self.throttled = _counter(registry, "trtc_api_throttled_total", accounts)
        self.retries = _counter(registry, "trtc_api_retries_total", accounts)
        self.budget_wait = _histogram(registry, "trtc_exporter_budget_wait_seconds",
                                      WAIT_BUCKETS, accounts)

    def for_account(self, account: str) -> ApiMetrics:
        """A view whose instruments fill in ``account`` (only with ``accounts=True``)."""
        view = ApiMetrics(None)
        prefix = (account,)
        view.requests, view.errors = self.requests.bound(prefix), self.errors.bound(prefix)
        view.throttled, view.retries = self.throttled.bound(prefix), self.retries.bound(prefix)
        view.duration = self.duration.bound(prefix)
        view.budget_wait = self.budget_wait.bound(prefix)
        return view

    def prepare(self, action: str, region: str) -> None:
        """Create the zero-valued series of an (action, region) before its first request, so
        rate() and increase() over retries and throttling have something to read."""
        for counter in (self.requests, self.retries, self.throttled):
            counter.labels(action, region)
        self.duration.labels(action, region)
        self.budget_wait.labels(action)
