"""Dashboard 2: TRTC API health — how the exporter's calls to the TRTC API are doing."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import heatmap as heatmap_model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from .common import (
    API_LATENCY_WARN_SECONDS,
    API_RATE_LIMIT,
    API_TIMEOUT_SECONDS,
    CLOCK_SKEW_FAIL_SECONDS,
    CLOCK_SKEW_WARN_SECONDS,
    ERROR_RATIO_WARN,
    build_dashboard,
    panel,
    query,
    row,
    sel,
    stacked_panel,
    stat_panel,
    timeseries_panel,
    with_dashed,
)

UID = "trtc-api-health"
RATE = "[$__rate_interval]"
NOT_FOUND = 'code!="FailedOperation.TaskNotExist"'


def _rate(metric: str, by: str, *matchers: str) -> str:
    return f"sum by ({by}) (rate({metric}{sel(*matchers, region=True)}{RATE}))"


def _rate_or_zero(metric: str, by: str, *matchers: str) -> str:
    """The rate, or 0 per requested series while the counter has no samples yet."""
    return f"{_rate(metric, by, *matchers)} or {_rate('trtc_api_requests_total', by)} * 0"


def _traffic_row() -> list[Any]:
    requests = _rate("trtc_api_requests_total", "action")
    errors = _rate_or_zero("trtc_api_errors_total", "action", NOT_FOUND)
    return [
        row("Traffic and budget"),
        panel(
            with_dashed(
                timeseries_panel((None, "green"), (API_RATE_LIMIT, "red"), lines=True),
                ".*budget.*",
            ),
            "Request rate vs. budget",
            "API attempts per second per action, retries included (trtc_api_requests_total), "
            "against the configured and effective budget of the selected exporters, added up "
            "(trtc_exporter_budget_rate). "
            f"The red line is the API's documented limit of {API_RATE_LIMIT} requests/s per "
            "account and action, shared with every other caller of the account.",
            "reqps",
            [
                query(requests, "{{action}} requests"),
                query(
                    f"sum by (action, kind) (trtc_exporter_budget_rate{sel()})",
                    "{{action}} budget ({{kind}})",
                ),
            ],
            width=16,
        ),
        panel(
            stat_panel(
                (None, "green"),
                (ERROR_RATIO_WARN, "red"),
                graph=common_model.BigValueGraphMode.AREA,
            ),
            "Error ratio",
            "Failed share of API attempts per action, FailedOperation.TaskNotExist excluded "
            "(a task that ended). Red at the TrtcApiErrorRatioHigh threshold.",
            "percentunit",
            [query(f"({errors}) / {requests}", "{{action}}")],
            width=8,
        ),
    ]


def _latency_row() -> list[Any]:
    buckets = _rate("trtc_api_request_duration_seconds_bucket", "le")
    by_action = _rate("trtc_api_request_duration_seconds_bucket", "action, le")
    return [
        row("Latency"),
        panel(
            heatmap.Panel()
            .calculate(False)
            .color(
                heatmap.HeatmapColorOptions()
                .mode(heatmap_model.HeatmapColorMode.SCHEME)
                .scheme("Oranges")
                .scale(heatmap_model.HeatmapColorScale.EXPONENTIAL)
                .exponent(0.5)
                .steps(64)
            )
            .y_axis(heatmap.YAxisConfig().unit("s"))
            .cell_values(heatmap.CellValues().unit("reqps")),
            "Request latency heatmap",
            "Distribution of API request durations, every attempt (trtc_api_request_duration_"
            "seconds histogram).",
            "s",
            [query(buckets, "{{le}}").format(PromQueryFormat.HEATMAP)],
        ),
        panel(
            timeseries_panel(
                (None, "green"),
                (API_LATENCY_WARN_SECONDS, "orange"),
                (API_TIMEOUT_SECONDS, "red"),
                lines=True,
            ),
            "Request latency p50 / p95 / p99",
            "Latency quantiles per action. Orange: TrtcApiLatencyHigh threshold (p99); red: the "
            f"API's {API_TIMEOUT_SECONDS} s server-side timeout.",
            "s",
            [
                query(f"histogram_quantile({q}, {by_action})", f"p{label} {{{{action}}}}")
                for q, label in (("0.5", "50"), ("0.95", "95"), ("0.99", "99"))
            ],
        ),
    ]


def _errors_row() -> list[Any]:
    return [
        row("Errors, throttling, retries"),
        panel(
            stacked_panel(40, (None, "red")),
            "Errors by code",
            "Failed API attempts per second by action and Tencent Error.Code or transport code "
            "(Timeout, ConnectionError, HTTP5xx, InvalidResponse, Other). "
            "FailedOperation.TaskNotExist is the normal answer for an ended task.",
            "reqps",
            [query(_rate("trtc_api_errors_total", "action, code"), "{{action}} {{code}}")],
            width=24,
        ),
        panel(
            timeseries_panel((None, "orange")),
            "Throttled requests",
            "Attempts answered RequestLimitExceeded per second (trtc_api_throttled_total). The "
            "exporter backs off its effective budget when this happens.",
            "reqps",
            [
                query(
                    _rate_or_zero("trtc_api_throttled_total", "action, region"),
                    "{{action}} {{region}}",
                )
            ],
            width=8,
        ),
        panel(
            timeseries_panel((None, "blue")),
            "Retries",
            "Retried attempts per second (trtc_api_retries_total); retries spend budget too.",
            "reqps",
            [
                query(
                    _rate_or_zero("trtc_api_retries_total", "action, region"),
                    "{{action}} {{region}}",
                )
            ],
            width=8,
        ),
        panel(
            timeseries_panel(
                (None, "red"),
                (-CLOCK_SKEW_FAIL_SECONDS, "orange"),
                (-CLOCK_SKEW_WARN_SECONDS, "green"),
                (CLOCK_SKEW_WARN_SECONDS, "orange"),
                (CLOCK_SKEW_FAIL_SECONDS, "red"),
                lines=True,
            ),
            "Clock skew",
            "Exporter clock minus the API's Date header (trtc_exporter_clock_skew_seconds). "
            f"Orange beyond {CLOCK_SKEW_WARN_SECONDS} s (TrtcExporterClockSkewHigh); at "
            f"{CLOCK_SKEW_FAIL_SECONDS} s the API rejects signatures.",
            "s",
            [query(f"trtc_exporter_clock_skew_seconds{sel()}", "{{instance}}")],
            width=8,
        ),
    ]


def build() -> Any:
    """Build the API health dashboard."""
    return build_dashboard(
        UID,
        "TRTC API health",
        "Rate, budget, latency, errors, throttling and clock skew of the exporter's TRTC API "
        "calls.",
        "trtc_api_requests_total",
        _traffic_row(),
        _latency_row(),
        _errors_row(),
    )
