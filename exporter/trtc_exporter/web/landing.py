"""The landing page: a small console for people without Grafana at hand.

Server-rendered HTML: summary cards (:mod:`console`), a filter form and the target table, whose
filters, sort order and auto-refresh all live in the URL query (:mod:`view`). Styles and the copy
button's script are same-origin files (:mod:`static`) so the page runs under a strict CSP.
Every value is HTML-escaped; the page shows no credentials (only where they come from). A row
that fails to render is skipped and logged, so the page never answers 500.
"""

from __future__ import annotations

import logging
from html import escape
from typing import Any

from trtc_exporter import __version__
from trtc_exporter.clock import WallSeconds
from trtc_exporter.durations import format_duration
from trtc_exporter.exposition.dropped import printable_target
from trtc_exporter.web.console import STATUS_ORDER, summary
from trtc_exporter.web.protocol import ExporterProtocol, TargetFacts
from trtc_exporter.web.rows import target_row
from trtc_exporter.web.svg import FILLS, status_strip
from trtc_exporter.web.view import SORT_KEYS, View

log = logging.getLogger("trtc_exporter.web")
COLUMNS = (("status", "Status"), ("", "Last hour"), ("target", "Target"), ("app", "App"),
           ("region", "Region"), ("api", "API"), ("labels", "Labels"), ("age", "Age"),
           ("error", "Last error"), ("request", "Request id"), ("next", "Next poll"))
"""(sort key, heading) of each table column; an empty key is not sortable."""
SHORT_ID = 18
SHORT_LABEL = 32
"""Longest ``name=value`` label chip shown in full; longer ones are cut in the middle (the full
text on hover), so one long label cannot push the table past a 1 400 px screen."""


def _shorten(text: str, limit: int) -> str:
    """``text``, or its head and tail around an ellipsis when longer than ``limit``."""
    if len(text) <= limit:
        return text
    tail = max(4, limit // 3)
    return f"{text[:limit - tail - 1]}…{text[-tail:]}"


def _short_id(value: str, what: str) -> str:
    """A monospace id, shortened when long, with the full value on hover and a copy button."""
    if not value:
        return ""
    shown = value if len(value) <= SHORT_ID else f"{value[:9]}…{value[-6:]}"
    full = escape(value)
    return (f'<span class="id" title="{full}">{escape(shown)}</span><button type="button" '
            f'class="copy" data-copy="{full}" aria-label="Copy {escape(what)} {full}">copy'
            "</button>")


def _age(seconds: float | None) -> str:
    return "" if seconds is None else escape(format_duration(round(seconds)))


def _breakable(code: str) -> str:
    """An error code that may wrap after each dot (``FailedOperation.<wbr>TaskNotExist``)."""
    return "<wbr>".join(f"{escape(part)}." for part in code.split("."))[:-1]


def _labels(labels: dict[str, str]) -> str:
    """One chip per label, each shortened like ids (full ``name=value`` on hover)."""
    chips = []
    for name, value in sorted(labels.items()):
        text = f"{name}={value}"
        chips.append(f'<span class="lbl" title="{escape(text)}">'
                     f"{escape(_shorten(text, SHORT_LABEL))}</span>")
    return "".join(chips)


def _cells(row: dict[str, Any], facts: TargetFacts, now: WallSeconds) -> list[str]:
    state = facts.state
    target = (_short_id(row["task_id"], "task id") if row["task_id"] else
              _short_id(row["session_id"], "session id"))
    if row["resolved_task_id"] and not row["task_id"]:
        target += f'<br><span class="small">task {_short_id(row["resolved_task_id"], "task id")}' \
                  "</span>"
    status = escape(row["status"])
    return [f'<span class="chip s-{status}">{status}</span>',
            status_strip(state.history, now, state.stale_since),
            target, escape(str(row["sdk_app_id"] or "")), escape(row["region"]),
            escape(row["api"]), _labels(row["labels"]), _age(row["age_seconds"]),
            f'<code class="err">{_breakable(row["last_error_code"])}</code>'
            if row["last_error_code"] else "",
            _short_id(row["request_id"] or "", "request id"), _age(row["next_poll_in_seconds"])]


def _row_html(row: dict[str, Any], facts: TargetFacts, now: WallSeconds) -> str:
    numeric = {"Age", "Next poll"}
    cells = "".join(
        f'<td data-label="{heading}"{" class=num" if heading in numeric else ""}>{cell}</td>'
        for (_, heading), cell in zip(COLUMNS, _cells(row, facts, now), strict=True))
    return f'<tr data-status="{escape(row["status"])}">{cells}</tr>'


def _header(view: View) -> str:
    cells = []
    for key, heading in COLUMNS:
        if not key:
            cells.append(f'<th scope="col">{heading}</th>')
            continue
        current = view.sort == key
        order = "desc" if current and view.order == "asc" else "asc"
        arrow = (" ▲" if view.order == "asc" else " ▼") if current else ""
        sort = f' aria-sort="{"ascending" if view.order == "asc" else "descending"}"' \
            if current else ""
        cells.append(f'<th scope="col"{sort}><a href="{escape(view.query(sort=key, order=order))}"'
                     f">{heading}{arrow}</a></th>")
    return "".join(cells)


def _select(name: str, label: str, values: list[str], chosen: str) -> str:
    options = "".join(f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>'
                      f"{escape(v)}</option>" for v in values)
    return (f'<label for="f-{name}">{label}<select id="f-{name}" name="{name}">'
            f'<option value="">all</option>{options}</select></label>')


def _filters(view: View, rows: list[dict[str, Any]]) -> str:
    statuses = [s for s in STATUS_ORDER if any(r["status"] == s for r in rows)]
    apps = sorted({str(r["sdk_app_id"]) for r in rows if r["sdk_app_id"] is not None})
    labels = sorted({f"{k}={v}" for r in rows for k, v in r["labels"].items()})
    refresh = "".join(f'<option value="{s}"{" selected" if s == view.refresh else ""}>'
                      f'{"off" if not s else f"every {s} s"}</option>' for s in (0, 15, 30, 60))
    hidden = "".join(f'<input type="hidden" name="{k}" value="{escape(v)}">'
                     for k, v in (("sort", view.sort), ("order", view.order)) if v)
    return (
        '<form class="filters" method="get" action="/" role="search" aria-label="Filter targets">'
        + _select("status", "Status", statuses, view.status)
        + _select("api", "API", sorted({r["api"] for r in rows}), view.api)
        + _select("app", "Application", apps, view.app)
        + _select("region", "Region", sorted({r["region"] for r in rows}), view.region)
        + _select("label", "Label", labels, view.label)
        + f'<label for="f-q">Search<input id="f-q" type="search" name="q" '
          f'value="{escape(view.q)}" placeholder="id, label, error"></label>'
        + f'<label for="f-refresh">Auto-refresh<select id="f-refresh" name="refresh">{refresh}'
          f"</select></label>{hidden}"
        + '<button type="submit">Apply</button><a class="reset" href="/">Reset</a></form>')


def _sortbar(view: View) -> str:
    links = " ".join(f'<a href="{escape(view.query(sort=key, order="asc"))}">{heading}</a>'
                     for key, heading in COLUMNS if key in SORT_KEYS)
    return f'<p class="sortbar">Sort by: {links}</p>'


def _legend() -> str:
    names = {"Stopped": "Stopped/Exited"}
    items = "".join(f'<span><span class="sw f-{s}"></span>{names.get(s, s)}</span>'
                    for s in FILLS if s != "Exited")
    return f'<div class="legend" aria-hidden="true">Last hour: {items}</div>'


Pair = tuple[dict[str, Any], TargetFacts]


def row_pairs(facts_list: list[TargetFacts], now: WallSeconds) -> list[Pair]:
    """(row, facts) of every target whose row can be built, in identity order (``Target.key``,
    all strings: total whatever the targets); the others are skipped and logged. A target whose
    text cannot be written (validation stops those at every entrance) is skipped too."""
    pairs = []
    for facts in sorted(facts_list, key=lambda f: f.state.target.key):
        if not printable_target(facts.state.target, (facts.state.resolved_task_id,)):
            log.warning("landing page: skipped %s: not valid text", facts.state.target.id)
            continue
        try:
            pairs.append((target_row(facts, now), facts))
        except Exception:
            log.exception("landing page: skipped a target that failed to render")
    return pairs


def target_table(pairs: list[Pair], view: View, now: WallSeconds) -> tuple[str, int, int]:
    """(the filter form and table HTML, rows shown, rows in all); bad rows skipped and logged."""
    by_row = {id(row): facts for row, facts in pairs}
    rows = [row for row, _ in pairs]
    body = []
    for row in view.arrange(rows):
        try:
            body.append(_row_html(row, by_row[id(row)], now))
        except Exception:
            log.exception("landing page: skipped a target that failed to render")
    table = (f'<div class="tablewrap"><table class="targets"><caption class="offscreen">Targets'
             f'</caption><thead><tr>{_header(view)}</tr></thead><tbody>{"".join(body)}</tbody>'
             "</table>" + ("" if body else '<p class="empty">No target matches.</p>') + "</div>")
    return _filters(view, rows) + _legend() + _sortbar(view) + table, len(body), len(rows)


def render_landing(exporter: ExporterProtocol, telemetry_path: str, view: View) -> str:
    """The whole HTML page for ``view``; every value escaped, no secrets."""
    now = exporter.now()
    pairs = row_pairs(exporter.target_facts(), now)
    table, shown, total = target_table(pairs, view, now)
    config, runtime = exporter.config, exporter.runtime
    mode = " · demo: embedded simulator" if runtime.demo else ""
    refresh = f'<meta http-equiv="refresh" content="{view.refresh}">' if view.refresh else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}
<title>TRTC Transcription Exporter</title>
<link rel="stylesheet" href="/static/landing.css?v={escape(__version__)}">
<script src="/static/landing.js?v={escape(__version__)}" defer></script></head><body>
<header class="top"><h1>TRTC Transcription Exporter</h1>
<span class="meta">{escape(__version__)} ({escape(exporter.revision)}){escape(mode)} ·
{escape(config.api.endpoint)} · poll every {escape(format_duration(config.poll_interval))}</span>
<nav aria-label="Endpoints"><a href="{escape(telemetry_path)}">Metrics</a>
<a href="/api/v1/targets">Targets JSON</a><a href="/-/healthy">Health</a>
<a href="/-/ready">Readiness</a></nav></header>
<main>
{summary(exporter, [row for row, _ in pairs])}
<h2>Targets: {shown} of {total} shown</h2>
{table}
</main></body></html>
"""
