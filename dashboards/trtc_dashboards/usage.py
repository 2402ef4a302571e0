"""Dashboard 4: TRTC usage and cost — transcription and translation minutes, cost, quota use.

Costs are priced like the recording rules of alerts/recording_rules.yml: every InProgress minute at
the exporter's configured transcription price, plus the minutes of targets with `translation: true`
at its translation price on top (pricing.*_usd_per_minute, exported as
trtc_exporter_pricing_usd_per_minute{kind}).
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, timeseries
from grafana_foundation_sdk.models import common as common_model

from .common import (
    PRICE_METRIC,
    QUOTA_WARN_RATIO,
    RUNNING_MAX_SECONDS,
    build_dashboard,
    dashed_panel,
    instant,
    once_per_app,
    panel,
    query,
    row,
    sel,
    stacked_panel,
    stat_panel,
    table_panel,
    table_query,
    thresholds,
)

UID = "trtc-usage-cost"
IN_PROGRESS = "trtc_ai_transcription_in_progress_seconds_total"
TRANSLATION = "trtc_ai_transcription_translation_seconds_total"
PRICE = f"on () group_left () max({PRICE_METRIC}{sel(kind='transcription')})"
TRANSLATION_PRICE = f"on () group_left () max({PRICE_METRIC}{sel(kind='translation')})"
COST_HOW = (
    f"InProgress minutes times the transcription price plus translation minutes times the "
    f"translation price, as the exporter is configured ({PRICE_METRIC})"
)


def _minutes(by: str, window: str, counter: str = IN_PROGRESS) -> str:
    """Minutes over ``window``, each app counted once (see once_per_app). A short window (a bar
    of a graph) deduplicates the increase; a long one ($__range) adds up per-minute samples of
    the deduplicated rate, as the recording rules do, so that an exporter replaced or restarted
    in the window loses nothing."""
    if window == "$__interval":
        return f"sum{by} ({once_per_app(f'increase({counter}{sel(region=True)}[{window}])')}) / 60"
    rate = once_per_app(f"rate({counter}{sel(region=True)}[5m])")
    return f"sum{by} (sum_over_time({rate}[{window}:1m]))"


def _cost(by: str, window: str) -> str:
    """Estimated cost in USD; translation adds 0 where nothing translates, as in the rules."""
    transcription = _minutes(by, window)
    translation = f"({_minutes(by, window, TRANSLATION)} or {transcription} * 0)"
    return f"{transcription} * {PRICE} + {translation} * {TRANSLATION_PRICE}"


def _cost_stat(title: str, time_from: str, period: str) -> stat.Panel:
    return panel(
        stat_panel().decimals(2).time_from(time_from),
        title,
        f"Estimated transcription and translation cost {period}, all apps: {COST_HOW}. An "
        "estimate, not a bill.",
        "currencyUSD",
        [instant(_cost("", "$__range"), "estimated cost")],
        width=6,
        height=5,
    )


def _totals_row() -> list[Any]:
    return [
        row("Totals"),
        _cost_stat("Estimated cost today", "now/d", "since midnight (dashboard time zone)"),
        _cost_stat("Estimated cost this month", "now/M", "since the first of the month"),
        panel(
            stat_panel().time_from("now/d"),
            "Minutes today",
            "Minutes spent InProgress today, all apps "
            "(increase of trtc_ai_transcription_in_progress_seconds_total), and the part of them "
            "spent by targets with translation: true "
            "(trtc_ai_transcription_translation_seconds_total), billed again at the translation "
            "price.",
            "m",
            [
                instant(_minutes("", "$__range"), "transcription"),
                instant(_minutes("", "$__range", TRANSLATION), "translation"),
            ],
            width=6,
            height=5,
        ),
        panel(
            stat_panel(graph=common_model.BigValueGraphMode.AREA),
            "Tasks InProgress",
            "Monitored tasks transcribing right now, all apps.",
            "none",
            [
                query(
                    "sum(" + once_per_app(
                        f"trtc_ai_transcription_tasks{sel(region=True, status='InProgress')}")
                    + ")",
                    "InProgress",
                )
            ],
            width=6,
            height=5,
        ),
    ]


def _minutes_per_app(title: str, description: str, counter: str) -> timeseries.Panel:
    return panel(
        stacked_panel(80, (None, "blue"))
        .draw_style(common_model.GraphDrawStyle.BARS)
        .interval("1h"),
        title,
        description,
        "m",
        [query(_minutes(" by (sdk_app_id)", "$__interval", counter), "{{sdk_app_id}}")],
        width=8,
    )


def _per_app_row() -> list[Any]:
    tasks = f"trtc_ai_transcription_tasks{sel(status='InProgress')}"
    in_progress = f"sum by (sdk_app_id) ({once_per_app(tasks)})"
    limit = f"max by (sdk_app_id) (trtc_ai_transcription_concurrency_limit{sel()} > 0)"
    return [
        row("Per app"),
        _minutes_per_app(
            "Transcription minutes per app",
            "Minutes spent InProgress per app and hour, stacked "
            "(trtc_ai_transcription_in_progress_seconds_total).",
            IN_PROGRESS,
        ),
        _minutes_per_app(
            "Translation minutes per app",
            "The part of the transcription minutes spent by targets with translation: true, per "
            "app and hour, stacked (trtc_ai_transcription_translation_seconds_total). Billed "
            "again, at the translation price.",
            TRANSLATION,
        ),
        panel(
            table_panel(("Time",), "Cost today").time_from("now/d").decimals(2),
            "Estimated cost today per app",
            f"Estimated cost since midnight per app: {COST_HOW}.",
            "currencyUSD",
            [table_query(_cost(" by (sdk_app_id)", "$__range"))],
            width=8,
        ),
        panel(
            dashed_panel(".*limit"),
            "Concurrency vs. quota per app",
            "Monitored InProgress tasks per app against its concurrency limit "
            "(trtc_ai_transcription_concurrency_limit, dashed). Only monitored tasks are counted.",
            "none",
            [query(in_progress, "{{sdk_app_id}} InProgress"), query(limit, "{{sdk_app_id}} limit")],
            width=16,
        ),
        panel(
            bargauge.Panel()
            .display_mode(common_model.BarGaugeDisplayMode.GRADIENT)
            .min(0)
            .max(1)
            .thresholds(thresholds((None, "green"), (QUOTA_WARN_RATIO, "orange"), (1, "red"))),
            "Quota used now",
            "InProgress tasks divided by the concurrency limit, per app. Orange at the "
            "TrtcAppConcurrencyNearLimit threshold.",
            "percentunit",
            [instant(f"{in_progress} / on (sdk_app_id) {limit}", "{{sdk_app_id}}")],
            width=8,
        ),
    ]


def _tasks_row() -> list[Any]:
    return [
        row("Tasks"),
        panel(
            table_panel(("Time", "__name__"), "Running for", red_from=RUNNING_MAX_SECONDS),
            "Longest-running tasks",
            "The 20 InProgress tasks running longest since their StartTime "
            "(trtc_ai_transcription_running_seconds); red beyond the TrtcTaskRunningTooLong "
            "threshold. Every minute is billed.",
            "s",
            [table_query(f"topk(20, trtc_ai_transcription_running_seconds{sel(region=True)})")],
            width=24,
        ),
    ]


def build() -> Any:
    """Build the usage and cost dashboard."""
    return build_dashboard(
        UID,
        "TRTC usage and cost",
        "Transcription and translation minutes, estimated cost and concurrency quota per TRTC app. "
        "Costs are estimates at the exporter's configured list prices.",
        "trtc_ai_transcription_status",
        _totals_row(),
        _per_app_row(),
        _tasks_row(),
    )
