"""Dashboard 4: TRTC usage and cost — transcription minutes, estimated cost and quota use.

Costs multiply InProgress minutes by the price the exporter is configured with
(pricing.transcription_usd_per_minute, exported as trtc_exporter_pricing_usd_per_minute), the same
price the recording rules of alerts/recording_rules.yml use.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import bargauge, stat, table, timeseries
from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.models import common as common_model

from .common import (
    PRICE_METRIC,
    QUOTA_WARN_RATIO,
    RUNNING_MAX_SECONDS,
    assemble,
    instant,
    new_dashboard,
    organize,
    panel,
    query,
    row,
    sel,
    stacked,
    table_query,
    thresholds,
    with_dashed,
)

UID = "trtc-usage-cost"
IN_PROGRESS = "trtc_ai_transcription_in_progress_seconds_total"
PRICE = f"on () group_left () max({PRICE_METRIC}{sel(kind='transcription')})"


def _minutes(by: str, window: str) -> str:
    return f"sum{by} (increase({IN_PROGRESS}{sel(region=True)}[{window}])) / 60"


def _cost_stat(title: str, time_from: str, period: str) -> stat.Panel:
    return panel(
        stat.Panel()
        .graph_mode(common_model.BigValueGraphMode.NONE)
        .thresholds(thresholds((None, "blue")))
        .decimals(2)
        .time_from(time_from),
        title,
        f"Estimated transcription cost {period}, all apps: InProgress minutes times the price per "
        f"minute the exporter is configured with ({PRICE_METRIC}). An estimate, not a bill.",
        "currencyUSD",
        [instant(f"{_minutes('', '$__range')} * {PRICE}", "estimated cost")],
        width=6,
        height=5,
    )


def _totals_row() -> list[Any]:
    return [
        row("Totals"),
        _cost_stat("Estimated cost today", "now/d", "since midnight (dashboard time zone)"),
        _cost_stat("Estimated cost this month", "now/M", "since the first of the month"),
        panel(
            stat.Panel()
            .graph_mode(common_model.BigValueGraphMode.NONE)
            .thresholds(thresholds((None, "blue")))
            .time_from("now/d"),
            "Transcription minutes today",
            "Minutes spent InProgress today, all apps "
            "(increase of trtc_ai_transcription_in_progress_seconds_total).",
            "m",
            [instant(_minutes("", "$__range"), "minutes")],
            width=6,
            height=5,
        ),
        panel(
            stat.Panel()
            .graph_mode(common_model.BigValueGraphMode.AREA)
            .thresholds(thresholds((None, "blue"))),
            "Tasks InProgress",
            "Monitored tasks transcribing right now, all apps.",
            "none",
            [
                query(
                    f"sum(trtc_ai_transcription_tasks{sel(region=True, status='InProgress')})",
                    "InProgress",
                )
            ],
            width=6,
            height=5,
        ),
    ]


def _per_app_row() -> list[Any]:
    in_progress = f"sum by (sdk_app_id) (trtc_ai_transcription_tasks{sel(status='InProgress')})"
    limit = f"max by (sdk_app_id) (trtc_ai_transcription_concurrency_limit{sel()} > 0)"
    return [
        row("Per app"),
        panel(
            timeseries.Panel()
            .draw_style(common_model.GraphDrawStyle.BARS)
            .stacking(stacked())
            .fill_opacity(80)
            .interval("1h")
            .thresholds(thresholds((None, "blue"))),
            "Transcription minutes per app",
            "Minutes spent InProgress per app and hour, stacked "
            "(trtc_ai_transcription_in_progress_seconds_total).",
            "m",
            [query(_minutes(" by (sdk_app_id)", "$__interval"), "{{sdk_app_id}}")],
            width=16,
        ),
        panel(
            table.Panel()
            .time_from("now/d")
            .decimals(2)
            .thresholds(thresholds((None, "text")))
            .sort_by([common_builder.TableSortByFieldState().display_name("Cost today").desc(True)])
            .with_transformation(organize(("Time",), {"Value": "Cost today"})),
            "Estimated cost today per app",
            f"Estimated cost since midnight per app (InProgress minutes times {PRICE_METRIC}).",
            "currencyUSD",
            [table_query(f"{_minutes(' by (sdk_app_id)', '$__range')} * {PRICE}")],
            width=8,
        ),
        panel(
            with_dashed(timeseries.Panel().thresholds(thresholds((None, "green"))), ".*limit"),
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
            table.Panel()
            .thresholds(thresholds((None, "green"), (RUNNING_MAX_SECONDS, "red")))
            .cell_options(common_model.TableColoredBackgroundCellOptions())
            .sort_by(
                [common_builder.TableSortByFieldState().display_name("Running for").desc(True)]
            )
            .with_transformation(organize(("Time", "__name__"), {"Value": "Running for"})),
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
    builder = new_dashboard(
        UID,
        "TRTC usage and cost",
        "Transcription minutes, estimated cost and concurrency quota per TRTC app. Costs are "
        "estimates at the exporter's configured list price.",
        "trtc_ai_transcription_status",
    )
    return assemble(builder, [*_totals_row(), *_per_app_row(), *_tasks_row()])
