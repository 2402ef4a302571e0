"""Dashboard 3: TRTC exporter internals — the exporter's own health, polling and budget."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    STALE_WARN_SECONDS,
    TASK_LEGEND,
    build_dashboard,
    dashed_panel,
    instant,
    panel,
    query,
    row,
    sel,
    stacked_panel,
    stat_panel,
    table_panel,
    table_query,
    timeseries_panel,
)

UID = "trtc-exporter-internals"
RATE = "[$__rate_interval]"


def _reload_mappings() -> list[model.ValueMapping]:
    return [
        model.ValueMap(
            options={
                "0": model.ValueMappingResult(text="Failed", color="red", index=0),
                "1": model.ValueMappingResult(text="OK", color="green", index=1),
            }
        )
    ]


def _exporter_row() -> list[Any]:
    return [
        row("Exporter"),
        panel(
            table_panel(("Time", "Value", "__name__")),
            "Build",
            "Version, revision and Python version of each exporter (trtc_exporter_build_info).",
            "none",
            [table_query(f"trtc_exporter_build_info{sel()}")],
            width=12,
            height=5,
        ),
        panel(
            stat_panel().text_mode(common_model.BigValueTextMode.NAME),
            "Shard",
            "Which shard of the target set each replica polls (trtc_exporter_shard, index of "
            "count); replicas of one job split the targets between them.",
            "none",
            [instant(f"trtc_exporter_shard{sel()}", "{{instance}}: {{index}} of {{count}}")],
            width=4,
            height=5,
        ),
        panel(
            stat_panel((None, "red"), (1, "green")).mappings(_reload_mappings()),
            "Config reload",
            "Whether the last configuration reload succeeded "
            "(trtc_exporter_config_last_reload_successful). After a failure the exporter keeps "
            "the last good configuration.",
            "none",
            [instant(f"trtc_exporter_config_last_reload_successful{sel()}", "{{instance}}")],
            width=4,
            height=5,
        ),
        panel(
            stat_panel(),
            "Last successful reload",
            "When the configuration was last loaded successfully "
            "(trtc_exporter_config_last_reload_success_time_seconds).",
            "dateTimeFromNow",
            [
                instant(
                    f"trtc_exporter_config_last_reload_success_time_seconds{sel()} * 1000",
                    "{{instance}}",
                )
            ],
            width=4,
            height=5,
        ),
        panel(
            stat_panel().text_mode(common_model.BigValueTextMode.VALUE_AND_NAME),
            "Targets by source",
            "Targets the exporter polls, by where they come from: config file, target file or "
            "API discovery (trtc_exporter_targets).",
            "none",
            [instant(f"sum by (source) (trtc_exporter_targets{sel()})", "{{source}}")],
            width=6,
            height=5,
        ),
        panel(
            stat_panel().text_mode(common_model.BigValueTextMode.NAME),
            "Credentials source",
            "Where the exporter took its API credentials from (trtc_exporter_credentials_source). "
            "Secrets themselves are never exposed.",
            "none",
            [instant(f"trtc_exporter_credentials_source{sel()} == 1", "{{source}}")],
            width=6,
            height=5,
        ),
        panel(
            stacked_panel(30),
            "Targets by source over time",
            "Monitored targets over time by source (trtc_exporter_targets), all replicas.",
            "none",
            [query(f"sum by (source) (trtc_exporter_targets{sel()})", "{{source}}")],
            width=12,
            height=5,
        ),
    ]


def _polling_row() -> list[Any]:
    last_success = f"trtc_ai_transcription_last_success_time_seconds{sel()}"
    stale = ((None, "green"), (STALE_WARN_SECONDS, "orange"))
    return [
        row("Polling"),
        panel(
            dashed_panel(".*configured"),
            "Poll interval: effective vs. configured",
            "Effective interval per action after capacity planning "
            "(trtc_exporter_poll_interval_effective_seconds) and the configured poll_interval. "
            "Effective above configured: the budget cannot poll every target in time "
            "(TrtcExporterBudgetSaturated).",
            "s",
            [
                query(
                    f"trtc_exporter_poll_interval_effective_seconds{sel()}",
                    "{{instance}} {{action}} effective",
                ),
                query(f"trtc_exporter_poll_interval_seconds{sel()}", "{{instance}} configured"),
            ],
        ),
        panel(
            dashed_panel(".*interval"),
            "Cycle duration",
            "How long the last full poll cycle took (trtc_exporter_cycle_duration_seconds), "
            "against the configured interval.",
            "s",
            [
                query(f"trtc_exporter_cycle_duration_seconds{sel()}", "{{instance}} cycle"),
                query(f"trtc_exporter_poll_interval_seconds{sel()}", "{{instance}} interval"),
            ],
        ),
        panel(
            timeseries_panel(*stale, lines=True),
            "Staleness",
            "Age of the oldest successful poll among targets, time since the last cycle ended "
            "and since the poller last made progress. Orange: the lower bound of "
            "TrtcTaskStatusStale.",
            "s",
            [
                query(
                    f"max by (job, instance) (time() - ({last_success} > 0))",
                    "{{instance}} oldest target",
                ),
                query(
                    f"time() - trtc_exporter_last_cycle_time_seconds{sel()}",
                    "{{instance}} since last cycle",
                ),
                query(
                    f"time() - trtc_exporter_poller_last_progress_time_seconds{sel()}",
                    "{{instance}} since poller progress",
                ),
            ],
        ),
        panel(
            timeseries_panel(*stale),
            "Stalest targets",
            "The ten targets whose last successful poll is oldest "
            "(time() - trtc_ai_transcription_last_success_time_seconds).",
            "s",
            [query(f"topk(10, time() - ({last_success} > 0))", TASK_LEGEND)],
        ),
    ]


def _budget_row() -> list[Any]:
    # Per exporter: each has its own budget (api.rate_limit x budget_share).
    requests = f"sum by (job, instance, action) (rate(trtc_api_requests_total{sel()}{RATE}))"
    configured = f"on (job, instance, action) trtc_exporter_budget_rate{sel(kind='configured')}"
    wait = f"sum by (action, le) (rate(trtc_exporter_budget_wait_seconds_bucket{sel()}{RATE}))"
    return [
        row("Budget"),
        panel(
            dashed_panel(".*configured"),
            "Budget rate and demand",
            "Configured and effective (adaptive) request budget per action "
            "(trtc_exporter_budget_rate) and the rate the target set needs "
            "(trtc_exporter_budget_demand_rate). Demand above effective means slower polling.",
            "reqps",
            [
                query(f"trtc_exporter_budget_rate{sel()}", "{{instance}} {{action}} {{kind}}"),
                query(f"trtc_exporter_budget_demand_rate{sel()}", "{{instance}} {{action}} demand"),
            ],
            width=8,
        ),
        panel(
            timeseries_panel(),
            "Budget wait p50 / p99",
            "Time requests waited for a budget token (trtc_exporter_budget_wait_seconds).",
            "s",
            [
                query(f"histogram_quantile({q}, {wait})", f"p{label} {{{{action}}}}")
                for q, label in (("0.5", "50"), ("0.99", "99"))
            ],
            width=8,
        ),
        panel(
            timeseries_panel((None, "green"), (0.9, "orange"), (1, "red"), lines=True),
            "Budget utilisation",
            "API attempts per second divided by the configured budget, per exporter and action; "
            "100% means its whole budget (api.rate_limit x budget_share) is in use.",
            "percentunit",
            [query(f"{requests} / {configured}", "{{instance}} {{action}}")],
            width=8,
        ),
    ]


def _webhook_row() -> list[Any]:
    """The callback listener's health (only exporters with --webhook.listen-address)."""
    requests = f"trtc_exporter_webhook_requests_total{sel()}"
    last = f"trtc_exporter_webhook_last_event_time_seconds{sel()}"
    return [
        row("Webhook (TRTC event callbacks)"),
        panel(
            stacked_panel(30),
            "Callbacks by result",
            "Requests to POST /webhook/trtc per second by result: applied, duplicate (TRTC's "
            "retries), ignored types, and refusals such as bad_signature, unknown_app or stale, "
            "whose name says what to fix (docs/webhooks.md).",
            "reqps",
            [query(f"sum by (result) (rate({requests}{RATE}))", "{{result}}")],
            width=16,
        ),
        panel(
            timeseries_panel((None, "green"), (300, "orange"), (600, "red"), lines=True),
            "Time since the last callback",
            "Seconds since each exporter's last verified callback (the listener's start before "
            "the first); TrtcWebhookSilent fires past 10 minutes while tasks are InProgress.",
            "s",
            [query(f"time() - {last}", "{{instance}}")],
            width=8,
        ),
    ]


def build() -> Any:
    """Build the exporter internals dashboard."""
    return build_dashboard(
        UID,
        "TRTC exporter internals",
        "Health of trtc-transcription-exporter itself: build, config reloads, polling cadence, "
        "staleness, request budget and the TRTC callback listener.",
        None,
        _exporter_row(),
        _polling_row(),
        _budget_row(),
        _webhook_row(),
    )
