"""The landing page: version, config summary without secrets, and the live target table.

Every value is HTML-escaped; the page shows no credentials (only where they come from).
"""

from __future__ import annotations

from html import escape
from typing import Any

from trtc_exporter import __version__
from trtc_exporter.durations import format_duration
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.rows import target_rows

_STYLE = """body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}th{cursor:pointer;background:#eee}
.InProgress{color:#070}.NotFound,.Unknown{color:#a00}.Preparing,.Idle{color:#a60}"""
_SCRIPT = """function filt(){var s=document.getElementById('status').value;
for(const r of document.querySelectorAll('#targets tbody tr')){
r.style.display=(!s||r.dataset.status===s)?'':'none'}}
function sortBy(i){var b=document.querySelector('#targets tbody');
var rows=[...b.rows];var asc=b.dataset.sort!==String(i);b.dataset.sort=asc?String(i):'';
rows.sort((x,y)=>{var a=x.cells[i].textContent,c=y.cells[i].textContent;
var n=parseFloat(a)-parseFloat(c);var d=isNaN(n)?a.localeCompare(c):n;return asc?d:-d});
rows.forEach(r=>b.appendChild(r))}
window.addEventListener('DOMContentLoaded',()=>{var q=new URLSearchParams(location.search);
if(q.get('status')){document.getElementById('status').value=q.get('status');filt()}
var c=[...document.querySelectorAll('#targets th')].findIndex(h=>h.textContent===q.get('sort'));
if(c>=0){sortBy(c)}});"""
COLUMNS = ("api", "region", "task_id", "sdk_app_id", "session_id", "source", "status",
           "age_seconds", "last_error_code", "request_id", "latency_seconds",
           "next_poll_in_seconds")


def _cell(value: Any) -> str:
    return "" if value is None else escape(str(value))


def _row(row: dict[str, Any]) -> str:
    cells = "".join(f"<td>{_cell(row[c])}</td>" for c in COLUMNS)
    status = escape(row["status"])
    return f'<tr data-status="{status}" class="{status}">{cells}</tr>'


def render_landing(exporter: ExporterProtocol, telemetry_path: str) -> str:
    """The whole HTML page; every value escaped, no secrets (only where credentials come from)."""
    config, runtime = exporter.config, exporter.runtime
    rows = target_rows(exporter.target_facts(), exporter.now())
    statuses = sorted({r["status"] for r in rows})
    options = "".join(f'<option value="{escape(s)}">{escape(s)}</option>' for s in statuses)
    header = "".join(f'<th onclick="sortBy({i})">{escape(c)}</th>' for i, c in enumerate(COLUMNS))
    plans = "".join(
        f"<li>{escape(action)}: budget {rate:.1f} req/s, effective interval "
        f"{escape(format_duration(interval))}</li>"
        for action, rate, interval in exporter.budget_plan())
    mode = " (demo: embedded simulator)" if runtime.demo else ""
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>TRTC Transcription Exporter</title>
<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>
<h1>TRTC Transcription Exporter</h1>
<p>Version {escape(__version__)} (revision {escape(exporter.revision)}){escape(mode)}</p>
<ul>
<li><a href="{escape(telemetry_path)}">Metrics</a></li>
<li><a href="/api/v1/targets">Targets (JSON)</a></li>
<li><a href="/-/healthy">Health</a> · <a href="/-/ready">Readiness</a></li>
</ul>
<h2>Configuration</h2>
<ul>
<li>API endpoint: {escape(config.api.endpoint)} (default region {escape(config.api.region)})</li>
<li>Poll interval: {escape(format_duration(config.poll_interval))}; timeout
{escape(format_duration(config.api.timeout))}; max retries {config.api.max_retries}</li>
<li>Credentials from: {escape(runtime.credentials_source or "none")}</li>
{plans}
<li>Last reload: {"successful" if runtime.reload_successful else "FAILED"}</li>
</ul>
<h2>Targets ({len(rows)})</h2>
<p>Status: <select id="status" onchange="filt()"><option value="">all</option>{options}</select></p>
<table id="targets"><thead><tr>{header}</tr></thead>
<tbody>{"".join(_row(r) for r in rows)}</tbody></table>
</body></html>
"""
