"""The landing page's summary cards: counts, budget bars, last errors, poller health.

Each card is rendered on its own; one that fails becomes a short "unavailable" note, so the page
still answers 200 (the landing page never returns 500).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from html import escape
from typing import Any

from trtc_exporter.durations import format_duration
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.svg import budget_bar

log = logging.getLogger("trtc_exporter.web")
STATUS_ORDER = ("InProgress", "Preparing", "Idle", "Stopped", "Exited", "NotFound", "Unknown")
TOP_ERRORS = 8
GENERATION_NAMES = {"ai_transcription": "1.0", "cloud_transcription": "2.0"}
"""Short column headings of the API generations (the full label value on hover)."""


def _card(title: str, body: Callable[[], str]) -> str:
    try:
        inner = body()
    except Exception:
        log.exception("landing page: the %r card failed", title)
        inner = '<p class="small">unavailable (see the exporter log)</p>'
    return f'<section class="card" aria-label="{escape(title)}"><h2>{escape(title)}</h2>' \
           f"{inner}</section>"


def _ordered(statuses: set[str]) -> list[str]:
    known = [s for s in STATUS_ORDER if s in statuses]
    return known + sorted(statuses - set(STATUS_ORDER))


def counts_table(rows: list[dict[str, Any]]) -> str:
    """Targets per status (rows) and API generation (columns), with totals."""
    if not rows:
        return '<p class="small">No targets.</p>'
    count = Counter((r["status"], r["api"]) for r in rows)
    apis = sorted({r["api"] for r in rows})
    head = "".join(f'<th scope="col" class="n"><abbr title="{escape(a)}">'
                   f"{escape(GENERATION_NAMES.get(a, a))}</abbr></th>" for a in apis)
    body = []
    for status in _ordered({r["status"] for r in rows}):
        cells = "".join(f'<td class="n">{count[(status, a)]}</td>' for a in apis)
        total = sum(count[(status, a)] for a in apis)
        body.append(f'<tr><th scope="row"><span class="chip s-{escape(status)}">'
                    f'{escape(status)}</span></th>{cells}<td class="n">{total}</td></tr>')
    totals = "".join(f'<td class="n">{sum(n for (_, api), n in count.items() if api == a)}'
                     "</td>" for a in apis)
    return (f'<table><thead><tr><th scope="col">status</th>{head}<th scope="col" class="n">'
            f'all</th></tr></thead><tbody>{"".join(body)}<tr><th scope="row">all</th>{totals}'
            f'<td class="n">{len(rows)}</td></tr></tbody></table>')


def budget_card(exporter: ExporterProtocol) -> str:
    """A bar per action: demand of the polled targets against the configured rate limit."""
    items = []
    for use in exporter.budget_use():
        stretched = (f"; intervals stretched to {escape(format_duration(use.interval))}"
                     if use.demand > use.effective else "")
        who = "1 target needs" if use.targets == 1 else f"{use.targets} targets need"
        items.append(f'<div><code>{escape(use.action)}</code> <span class="small">'
                     f"{who} {use.demand:.1f} of {use.limit:g} req/s"
                     f"{stretched}</span>{budget_bar(use.demand, use.limit, use.effective)}</div>")
    return "".join(items) or '<p class="small">No actions polled.</p>'


def errors_card(rows: list[dict[str, Any]]) -> str:
    """The last error code of each target, counted, most frequent first."""
    count = Counter(r["last_error_code"] for r in rows if r["last_error_code"])
    if not count:
        return '<p class="small">No target\'s last poll failed.</p>'
    items = "".join(f'<tr><td><code class="err">{escape(code)}</code></td><td class="n">{n}</td>'
                    f"</tr>" for code, n in count.most_common(TOP_ERRORS))
    return (f'<table><thead><tr><th scope="col">last error code</th><th scope="col" class="n">'
            f"targets</th></tr></thead><tbody>{items}</tbody></table>")


def health_card(exporter: ExporterProtocol, rows: list[dict[str, Any]]) -> str:
    """Poller health and readiness, the newest answer's age, the last reload, credentials."""
    runtime = exporter.runtime
    healthy = '<span class="ok">healthy</span>' if exporter.healthy() else \
        '<span class="bad">stalled</span>'
    ready = "ready" if exporter.ready() else "first cycle not done"
    ages = [r["age_seconds"] for r in rows if r["age_seconds"] is not None]
    newest = f"newest answer {escape(format_duration(min(ages)))} ago" if ages else \
        "no answer yet"
    reload_ok = "successful" if runtime.reload_successful else '<span class="bad">FAILED</span>'
    return (f"<ul><li>Poller: {healthy}, {ready}</li><li>{newest}</li>"
            f"<li>Last reload: {reload_ok}</li>"
            f"<li>Credentials from: {escape(runtime.credentials_source or 'none')}</li></ul>")


def summary(exporter: ExporterProtocol, rows: list[dict[str, Any]]) -> str:
    """The four summary cards in a responsive grid."""
    return ('<div class="cards">'
            + _card("Targets by status and API", lambda: counts_table(rows))
            + _card("Budget in use", lambda: budget_card(exporter))
            + _card("Last errors", lambda: errors_card(rows))
            + _card("Poller", lambda: health_card(exporter, rows))
            + "</div>")
