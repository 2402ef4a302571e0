"""Shared pieces of the dashboards: selectors, thresholds, variables and panel helpers.

Selectors and thresholds live here and nowhere else in the generator. The alert thresholds they
mirror are defined in alerts/alerts.yml; the price per minute comes from the exporter.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Iterable
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

PanelBuilder = TypeVar("PanelBuilder", bound=cogbuilder.Builder[model.Panel])

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")

# --- Selectors -----------------------------------------------------------------------------------
# Every query filters on the dashboard variables through sel(); that is the one place to change
# how the exporter's series are selected.
JOB_INSTANCE = ('job=~"$job"', 'instance=~"$instance"')
REGION = 'region=~"$region"'


def sel(*matchers: str, region: bool = False, **equal: str) -> str:
    """Label matchers for the dashboard variables, plus raw matchers and label="value" pairs.

    region=True adds the region variable; pass it only for series that carry a region label.
    """
    parts = [*JOB_INSTANCE, *((REGION,) if region else ()), *matchers]
    parts += [f'{label}="{value}"' for label, value in equal.items()]
    return "{" + ", ".join(parts) + "}"


def once_per_app(series: str, *labels: str) -> str:
    """``series`` (per app: api, region, sdk_app_id, plus ``labels``) counted once however many
    exporters report it, as the recording rules do: the largest value per app and shard
    (trtc_exporter_shard{index}: exporters of one shard report the same targets), to be summed
    over shards by the caller. Sum it ``by`` a subset of the app labels and ``labels``."""
    by = ", ".join(("api", "region", "sdk_app_id", *labels, "index"))
    return (f"max by ({by}) ({series} * on (job, instance) group_left (index) "
            f"trtc_exporter_shard{sel()})")


def once_per_task(series: str) -> str:
    """The targets of ``series`` (a filter such as ``x == 1``) each counted once, whichever
    exporters report them: one series per target identity, for count()."""
    return f"group by (api, region, sdk_app_id, task_id, session_id) ({series})"


# --- Thresholds (visual; the alerting thresholds are in alerts/alerts.yml) ------------------------
API_RATE_LIMIT = 20  # requests/s per account and action, as documented by the API
API_TIMEOUT_SECONDS = 6  # server-side timeout documented by the API
API_LATENCY_WARN_SECONDS = 3  # TrtcApiLatencyHigh
ERROR_RATIO_WARN = 0.05  # TrtcApiErrorRatioHigh
CLOCK_SKEW_WARN_SECONDS = 60  # TrtcExporterClockSkewHigh
CLOCK_SKEW_FAIL_SECONDS = 300  # the API rejects signatures beyond this skew
PREPARING_STUCK_SECONDS = 300  # TrtcTaskStuckPreparing
RUNNING_MAX_SECONDS = 4 * 3600  # TrtcTaskRunningTooLong
QUOTA_WARN_RATIO = 0.8  # TrtcAppConcurrencyNearLimit
STALE_WARN_SECONDS = 300  # TrtcTaskStatusStale (lower bound)
# The exporter's configured prices (pricing.transcription_usd_per_minute and
# pricing.translation_usd_per_minute, one `kind` each); the rules read them through
# trtc:transcription_price_usd_per_minute and trtc:translation_price_usd_per_minute, the dashboards
# directly so they need no rules.
PRICE_METRIC = "trtc_exporter_pricing_usd_per_minute"

# Status values of both API generations, with the number the state timeline maps them to.
STATUSES: tuple[tuple[str, int, str], ...] = (
    ("Idle", 1, "blue"),
    ("Preparing", 2, "yellow"),
    ("InProgress", 3, "green"),
    ("Stopped", 4, "purple"),
    ("Exited", 5, "purple"),
    ("Unknown", 6, "orange"),
    ("NotFound", 7, "red"),
)
TASK_LEGEND = "{{task_id}}{{session_id}} ({{api}}, {{region}})"
TASK_LABELS = ("api", "region", "sdk_app_id", "task_id", "session_id")


# --- Variables -----------------------------------------------------------------------------------
def _query_variable(name: str, label: str, query: str, description: str) -> dashboard.QueryVariable:
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(DATASOURCE)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(selected=True, text="All", value="$__all"))
    )


def variables(region_metric: str | None) -> list[cogbuilder.Builder[model.VariableModel]]:
    """The datasource, job and instance variables, and region when a metric carries it."""
    result: list[cogbuilder.Builder[model.VariableModel]] = [
        dashboard.DatasourceVariable("datasource")
        .label("Data source")
        .description("Prometheus that scrapes trtc-transcription-exporter.")
        .type("prometheus"),
        _query_variable(
            "job",
            "Job",
            "label_values(trtc_exporter_build_info, job)",
            "Scrape job(s) of the exporter.",
        ),
        _query_variable(
            "instance",
            "Instance",
            'label_values(trtc_exporter_build_info{job=~"$job"}, instance)',
            "Exporter instance(s).",
        ),
    ]
    if region_metric:
        result.append(
            _query_variable(
                "region",
                "Region",
                f"label_values({region_metric}{sel()}, region)",
                "TRTC API region(s).",
            )
        )
    return result


def new_dashboard(uid: str, title: str, description: str, region_metric: str | None) -> Any:
    """A dashboard with the shared settings, variables and links to its siblings."""
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["trtc", "transcription", "trtc-transcription-exporter"])
        .editable()
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .variables(variables(region_metric))
        .link(
            dashboard.DashboardLink("TRTC dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags(["trtc-transcription-exporter"])
            .icon("external link")
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


# --- Queries and panels ---------------------------------------------------------------------------
def query(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    """A range query."""
    return prometheus.Dataquery().expr(expr).legend_format(legend).range()


def instant(expr: str, legend: str = "__auto") -> prometheus.Dataquery:
    """An instant query, for stats."""
    return prometheus.Dataquery().expr(expr).legend_format(legend).instant()


def table_query(expr: str) -> prometheus.Dataquery:
    """An instant query in table format, one row per series."""
    return prometheus.Dataquery().expr(expr).instant().format(PromQueryFormat.TABLE)


def panel(
    builder: PanelBuilder,
    title: str,
    description: str,
    unit: str,
    queries: Iterable[prometheus.Dataquery],
    *,
    width: int = 12,
    height: int = 8,
) -> PanelBuilder:
    """Apply what every panel has: title, description, unit, datasource, size and queries."""
    b: Any = builder
    b.title(title).description(description).unit(unit).datasource(DATASOURCE)
    b.span(width).height(height)
    for ref_id, target in zip(string.ascii_uppercase, queries, strict=False):
        b.with_target(target.ref_id(ref_id).datasource(DATASOURCE))
    return builder


def thresholds(*steps: tuple[float | None, str]) -> dashboard.ThresholdsConfig:
    """Absolute thresholds; the first step's value is None (the base colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in steps])
    )


def threshold_lines() -> common_builder.GraphThresholdsStyleConfig:
    """Draw thresholds as dashed lines on time series."""
    return common_builder.GraphThresholdsStyleConfig().mode(
        common_model.GraphThresholdsStyleMode.DASHED
    )


def organize(exclude: Iterable[str], rename: dict[str, str]) -> model.DataTransformerConfig:
    """The 'organize' transformation: hide and rename table columns."""
    return model.DataTransformerConfig(
        id_val="organize",
        options={
            "excludeByName": {name: True for name in exclude},
            "indexByName": {},
            "renameByName": rename,
        },
    )


def with_dashed(builder: PanelBuilder, *regexps: str) -> PanelBuilder:
    """Draw the series whose names match these regexes as dashed lines without fill."""
    props = [
        model.DynamicConfigValue(
            id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}
        ),
        model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
    ]
    b: Any = builder
    for regexp in regexps:
        b.override_by_regexp(regexp, props)
    return builder


def stacked() -> common_builder.StackingConfig:
    """Normal stacking, for series that add up."""
    return common_builder.StackingConfig().mode(common_model.StackingMode.NORMAL)


# --- Panel shapes: the visualisations the dashboards use again and again --------------------------
Step = tuple[float | None, str]


def stat_panel(
    *steps: Step, graph: common_model.BigValueGraphMode = common_model.BigValueGraphMode.NONE
) -> stat.Panel:
    """A stat with absolute thresholds (plain blue without steps), no sparkline by default."""
    return stat.Panel().graph_mode(graph).thresholds(thresholds(*steps or ((None, "blue"),)))


def timeseries_panel(*steps: Step, lines: bool = False) -> timeseries.Panel:
    """A time series with absolute thresholds (plain green without steps); lines=True draws
    them as dashed lines."""
    builder = timeseries.Panel().thresholds(thresholds(*steps or ((None, "green"),)))
    if lines:
        builder.thresholds_style(threshold_lines())
    return builder


def stacked_panel(fill_opacity: int, *steps: Step) -> timeseries.Panel:
    """A stacked, filled time series, for series that add up."""
    return timeseries_panel(*steps).stacking(stacked()).fill_opacity(fill_opacity)


def dashed_panel(*regexps: str) -> timeseries.Panel:
    """A plain time series whose series matching these regexes (limits, budgets) are dashed."""
    return with_dashed(timeseries_panel(), *regexps)


def table_panel(
    hidden: Iterable[str],
    value: str | None = None,
    *,
    desc: bool = True,
    red_from: float | None = None,
) -> table.Panel:
    """A table hiding these columns, in text colour.

    With value, the Value column is renamed to it and the rows are sorted by it. With red_from,
    cells are coloured: green, and red from that value on.
    """
    builder = table.Panel()
    if red_from is None:
        builder.thresholds(thresholds((None, "text")))
    else:
        builder.thresholds(thresholds((None, "green"), (red_from, "red")))
        builder.cell_options(common_model.TableColoredBackgroundCellOptions())
    if value is None:
        return builder.with_transformation(organize(hidden, {}))
    return builder.sort_by(
        [common_builder.TableSortByFieldState().display_name(value).desc(desc)]
    ).with_transformation(organize(hidden, {"Value": value}))


def row(title: str) -> dashboard.Row:
    """A row header."""
    return dashboard.Row(title)


def assemble(builder: Any, items: Iterable[Any]) -> Any:
    """Add rows and panels in order; panels after a row belong to it."""
    for item in items:
        if isinstance(item, dashboard.Row):
            builder.with_row(item)
        else:
            builder.with_panel(item)
    return builder


def build_dashboard(
    uid: str, title: str, description: str, region_metric: str | None, *rows: Iterable[Any]
) -> Any:
    """A new_dashboard with the rows (each a row header and its panels) assembled in order."""
    return assemble(new_dashboard(uid, title, description, region_metric), itertools.chain(*rows))


def finish(builder: Any) -> model.Dashboard:
    """Build the dashboard and number its panels in order, so ids are stable."""
    built: model.Dashboard = builder.build()
    for number, item in enumerate(built.panels or [], start=1):
        item.id_val = number
    return built
