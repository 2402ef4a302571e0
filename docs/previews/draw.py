"""Draw one dashboard's panels, as Prometheus answered their queries, in Grafana's grid layout.

Input per panel: the panel JSON (type, title, gridPos, unit, legendFormat, value mappings) and a
list of ``{"target": target JSON, "result": Prometheus result}``; range results (``values``) for
time series, state timelines and heatmaps, instant results (``value``) for stats, tables and bar
gauges. Output: one PNG. Used by render.py.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

GRID_COLUMNS = 24
ROW_INCH = 0.42  # height of one Grafana grid unit (30 px) in the picture
WIDTH_INCH = 18.0
BACKGROUND, PANEL, TEXT, MUTED = "#111217", "#181b1f", "#ccccdc", "#8e8e9e"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9",
           "#fade2a", "#37872d", "#c4162a"]
NAMED = {"blue": "#5794f2", "yellow": "#fade2a", "green": "#73bf69", "purple": "#b877d9",
         "orange": "#ff9830", "red": "#f2495c", "text": TEXT}
HIDDEN_COLUMNS = {"__name__", "job", "instance"}
TABLE_ROW_INCH = 0.24
# "now" of the data being drawn (the end of the queried range), for "… ago" units.
NOW = {"time": 0.0}


def fmt(value: float, unit: str | None) -> str:
    """A value with its Grafana unit, short: ``0.5 percentunit`` → ``50%``."""
    if isinstance(value, float) and math.isnan(value):
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.1f}%"
    if unit == "currencyUSD":
        return f"${value:,.2f}"
    if unit == "reqps":
        return f"{value:.3g} req/s"
    if unit == "s":
        return f"{value * 1000:.3g} ms" if abs(value) < 1 and value else f"{value:.3g} s"
    if unit == "m":
        return f"{value:.3g} min"
    if unit == "dateTimeFromNow":
        return f"{(NOW['time'] - value / 1000):.0f} s ago"
    if unit == "dateTimeAsIso":
        return datetime.fromtimestamp(value / 1000).strftime("%Y-%m-%d %H:%M:%S")
    return f"{value:.4g}"


def legend(target: dict[str, Any], labels: dict[str, str]) -> str:
    """Grafana's legendFormat with ``{{label}}`` filled in, else the label set."""
    form = target.get("legendFormat")
    if form:
        return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), form).strip()
    shown = {k: v for k, v in labels.items() if k not in HIDDEN_COLUMNS}
    return ", ".join(f"{k}={v}" for k, v in shown.items()) or "value"


def _unit(panel: dict[str, Any]) -> str | None:
    unit: str | None = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
    return unit


def _series(answers: list[dict[str, Any]]) -> list[tuple[str, list[float], list[float]]]:
    out = []
    for answer in answers:
        for item in answer["result"]:
            points = item.get("values") or [item["value"]]
            times = [float(t) for t, _ in points]
            values = [float(v) for _, v in points]
            out.append((legend(answer["target"], item["metric"]), times, values))
    return out


def _timeseries(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    unit = _unit(panel)
    series = _series(answers)
    for index, (name, times, values) in enumerate(series):
        stamps = [datetime.fromtimestamp(t) for t in times]
        ax.plot(stamps, values, color=PALETTE[index % len(PALETTE)], linewidth=1.4, label=name)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_formatter(lambda v, _: fmt(v, unit))
    ax.tick_params(colors=MUTED, labelsize=7)
    ax.grid(color="#2c3235", linewidth=0.6)
    if series:
        ax.legend(loc="upper left", fontsize=6.5, frameon=True, facecolor=PANEL, framealpha=0.8,
                  edgecolor=PANEL, labelcolor=TEXT, ncol=1 if len(series) < 6 else 2)


def _stat(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    unit = _unit(panel)
    series = [(name, values[-1]) for name, _, values in _series(answers)][:8]
    ax.axis("off")
    if not series:
        ax.text(0.5, 0.45, "No data", ha="center", va="center", color=MUTED, fontsize=14)
        return
    columns = len(series)
    size = 22 if columns <= 2 else 16 if columns <= 4 else 11
    texts = [ax.text((index + 0.5) / columns, 0.50, fmt(value, unit), ha="center", va="center",
                     color=PALETTE[index % 10], fontsize=size, fontweight="bold")
             for index, (_, value) in enumerate(series)]
    _shrink_to_fit(ax, texts, columns)
    for index, (name, _) in enumerate(series):
        ax.text((index + 0.5) / columns, 0.12, name, ha="center", va="center", color=MUTED,
                fontsize=7)


def _shrink_to_fit(ax: Axes, texts: list[Any], columns: int) -> None:
    """One font size for all values, small enough that none is wider than its column (long
    values such as "122 s ago" in a narrow panel would otherwise run into each other)."""
    renderer = ax.figure.canvas.get_renderer()  # type: ignore[attr-defined]
    room = 0.92 * ax.get_window_extent(renderer).width / columns
    size = texts[0].get_fontsize()
    while size > 7 and max(t.get_window_extent(renderer).width for t in texts) > room:
        size -= 1
        for text in texts:
            text.set_fontsize(size)


def _bargauge(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    unit = _unit(panel)
    series = [(name, values[-1]) for name, _, values in _series(answers)][:10]
    names = [name for name, _ in series]
    values = [value for _, value in series]
    ax.barh(names, values, color=PALETTE[0], height=0.6)
    ax.set_xlim(0, 1 if unit == "percentunit" else max(values + [1]))
    for y, value in enumerate(values):
        ax.text(value, y, " " + fmt(value, unit), va="center", color=TEXT, fontsize=8)
    ax.invert_yaxis()
    ax.tick_params(colors=MUTED, labelsize=7)
    ax.xaxis.set_major_formatter(lambda v, _: fmt(v, unit))


def _table(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    unit = _unit(panel)
    items = [item for answer in answers for item in answer["result"]][:8]
    ax.axis("off")
    if not items:
        ax.text(0.5, 0.5, "No data", ha="center", va="center", color=MUTED, fontsize=12)
        return
    columns = sorted({k for item in items for k in item["metric"]} - HIDDEN_COLUMNS)
    rows = [[item["metric"].get(c, "") for c in columns] + [fmt(float(item["value"][1]), unit)]
            for item in items]
    axes_inch = ax.get_position().height * ax.figure.get_figheight()
    height = min(1.0, (len(rows) + 1) * TABLE_ROW_INCH / axes_inch)
    table = ax.table(cellText=rows, colLabels=columns + ["Value"], cellLoc="left",
                     colLoc="left", bbox=(0, 1 - height, 1, height))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    for cell in table.get_celld().values():
        cell.set_edgecolor("#2c3235")
        cell.set_facecolor(PANEL)
        cell.get_text().set_color(TEXT)
    for (row, _), cell in table.get_celld().items():
        if row == 0:
            cell.get_text().set_fontweight("bold")


def _state_timeline(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    mappings: dict[str, Any] = {}
    for mapping in panel.get("fieldConfig", {}).get("defaults", {}).get("mappings", []):
        mappings.update(mapping.get("options", {}))
    series = sorted(_series(answers))[:16]
    for row, (_, times, values) in enumerate(series):
        for start, end, value in zip(times, times[1:] + [times[-1] + 2], values, strict=True):
            option = mappings.get(str(int(value)), {})
            color = NAMED.get(option.get("color", ""), MUTED)
            ax.broken_barh([(start, end - start)], (row - 0.4, 0.8), color=color)
    ax.set_yticks(range(len(series)), [name for name, _, _ in series])
    ax.invert_yaxis()
    ax.tick_params(colors=MUTED, labelsize=6.5)
    ax.xaxis.set_major_formatter(
        lambda v, _: datetime.fromtimestamp(v).strftime("%H:%M:%S"))
    handles = [plt.Rectangle((0, 0), 1, 1, color=NAMED.get(o.get("color", ""), MUTED))
               for o in mappings.values()]
    ax.legend(handles, [o.get("text", "") for o in mappings.values()], loc="upper center",
              bbox_to_anchor=(0.5, -0.06), ncol=len(handles), fontsize=7, frameon=False,
              labelcolor=TEXT)


def _heatmap(ax: Axes, panel: dict[str, Any], answers: list[dict[str, Any]]) -> None:
    buckets = sorted(((float(item["metric"]["le"]), item) for answer in answers
                      for item in answer["result"]), key=lambda pair: pair[0])
    if not buckets:
        return
    times = [float(t) for t, _ in buckets[0][1]["values"]]
    cumulative = [[float(v) for _, v in item["values"]] for _, item in buckets]
    width = min(len(row) for row in cumulative)
    # Prometheus buckets are cumulative; a heatmap cell is the share of one bucket (Grafana's
    # "tsbuckets" does the same de-accumulation).
    cells = [[row[i] - (cumulative[n - 1][i] if n else 0) for i in range(width)]
             for n, row in enumerate(cumulative)]
    ax.imshow(cells, aspect="auto", origin="lower", cmap="inferno", interpolation="nearest",
              extent=(times[0], times[width - 1], -0.5, len(cells) - 0.5))
    ax.set_yticks(range(len(cells)), [fmt(le, "s") if le != math.inf else "+Inf"
                                      for le, _ in buckets])
    ax.tick_params(colors=MUTED, labelsize=6)
    ax.xaxis.set_major_formatter(
        lambda v, _: datetime.fromtimestamp(v).strftime("%H:%M:%S"))


DRAW = {"timeseries": _timeseries, "stat": _stat, "bargauge": _bargauge, "table": _table,
        "state-timeline": _state_timeline, "heatmap": _heatmap}


def _place(grid: dict[str, int], total: int) -> tuple[float, float, float, float]:
    x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
    return (x / GRID_COLUMNS, 1 - (y + h) / total, w / GRID_COLUMNS, h / total)


def draw_dashboard(title: str, panels: list[dict[str, Any]], answers: list[Any],
                   span: tuple[float, float], target: Path) -> None:
    """Write ``target``: the dashboard's title, then each panel at its gridPos."""
    total = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels) + 2
    fig = plt.figure(figsize=(WIDTH_INCH, total * ROW_INCH), facecolor=BACKGROUND)
    minutes = (span[1] - span[0]) / 60
    NOW["time"] = span[1]
    fig.text(0.006, 1 - 0.9 / total, f"{title}   ·   demo data, last {minutes:.0f} minutes",
             color=TEXT, fontsize=13, fontweight="bold", va="center")
    for panel, panel_answers in zip(panels, answers, strict=True):
        grid = dict(panel["gridPos"], y=panel["gridPos"]["y"] + 2)
        left, bottom, width, height = _place(grid, total)
        if panel["type"] == "row":
            fig.text(left + 0.006, bottom + height / 2, panel["title"], color=TEXT, fontsize=11,
                     fontweight="bold", va="center")
            continue
        frame = fig.add_axes((left + 0.002, bottom + 0.002, width - 0.004, height - 0.004))
        frame.set_facecolor(PANEL)
        frame.set_xticks([])
        frame.set_yticks([])
        for spine in frame.spines.values():
            spine.set_color("#2c3235")
        title_room = 0.55 / grid["h"]
        frame.text(0.01, 1 - title_room / 2, panel["title"], transform=frame.transAxes,
                   color=TEXT, fontsize=9, fontweight="bold", va="center")
        inner = _inner(panel["type"], title_room)
        ax = fig.add_axes((left + width * inner[0], bottom + height * inner[1],
                           width * inner[2], height * inner[3]), facecolor=PANEL)
        for spine in ax.spines.values():
            spine.set_color("#2c3235")
        DRAW[panel["type"]](ax, panel, panel_answers)
    fig.savefig(target, dpi=80, facecolor=BACKGROUND)
    plt.close(fig)


def _inner(kind: str, title_room: float) -> tuple[float, float, float, float]:
    """Where the plot sits inside its panel frame: left, bottom, width, height (fractions)."""
    top = 1 - title_room - 0.04
    if kind in ("stat", "table"):
        return (0.02, 0.04, 0.96, top - 0.04)
    if kind in ("state-timeline", "bargauge"):
        return (0.22, 0.16, 0.76, top - 0.16)
    return (0.09, 0.12, 0.89, top - 0.12)
