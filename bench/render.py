"""(e) /metrics render time and process RSS at 1 000 and 10 000 targets, against client_python.

The exporter side is an in-process ``Exporter`` whose store holds one poll's result per target:
each target gets a simulator-shaped DescribeAITranscription answer (InProgress), parsed and applied
by the package's own ``parse_response``/``apply_outcome``, as the poller does. Render time is the
best of a few ``generate_latest(exporter.registry)``, i.e. ``collect()`` building the families from
the snapshot plus the text encoding.

The baseline is what client_python costs for the same output: a fresh registry with plain
``Gauge``s holding the same series (per target: the 6-state status set with 6 labels and 6 more
gauges with the 5 identity labels, same label values), rendered with ``generate_latest``. Both
are rendered alternately and the best time of each is kept (the machine may be shared).

RSS is measured in fresh subprocesses (``/proc/self/status`` VmRSS and VmHWM after building and
rendering once), for the exporter and for the baseline. Goals: render <= 1.5 x client_python and
RSS <= 120 MB at 10 000 targets.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import (
    ACTION,
    LIMIT,
    SECRET_ID,
    SECRET_KEY,
    exporter_config,
    finish_run,
    log,
    plotter,
    proc_status,
    run_standalone,
    task_id,
)

SIZES = (1000, 10_000)
GOAL_RATIO = 1.5
GOAL_RSS = 120 * 1024 * 1024
STATES = ("Idle", "Preparing", "InProgress", "Stopped", "Unknown", "NotFound")
IDENTITY = ("api", "region", "task_id", "sdk_app_id", "session_id")
PER_TARGET = ("trtc_ai_transcription_start_time_seconds",
              "trtc_ai_transcription_status_change_time_seconds",
              "trtc_ai_transcription_last_success_time_seconds",
              "trtc_ai_transcription_poll_success", "trtc_ai_transcription_running_seconds")


def filled_exporter(n: int) -> Any:
    """An Exporter (system clock, never started) whose store holds one answer per target."""
    from dataclasses import replace

    from trtc_exporter.api.credentials import Credentials, StaticProvider
    from trtc_exporter.api.outcome import Outcome
    from trtc_exporter.app import Exporter
    from trtc_exporter.config.model import parse_config
    from trtc_exporter.polling.state import TargetState, apply_outcome
    from trtc_exporter.response import parse_response
    from trtc_exporter.secret import Secret

    config = parse_config(exporter_config(n, "http://127.0.0.1:9"))
    creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
    app = Exporter(config, creds)
    now = time.time()
    for target in app.poller.targets():
        body = json.dumps({"Response": {
            "StartTime": "2026-11-28 10:00:00.000000", "Status": "InProgress",
            "TaskId": target.task_id, "RequestId": f"req-{target.task_id}"}}).encode()
        prev = app.store.get(target.key) or TargetState(target)
        new = apply_outcome(prev, Outcome(parse_response(ACTION, body), 1, 0.02), now)
        app.store.record_poll(prev, replace(new, interval=15.0, next_poll=now + 15.0))
    return app


def baseline_registry(n: int) -> Any:
    """client_python's plain Gauges holding the same per-target series as the exporter."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry(auto_describe=True)
    status = Gauge("trtc_ai_transcription_status", "status", IDENTITY + ("status",),
                   registry=registry)
    info = Gauge("trtc_ai_transcription_info", "info", IDENTITY + ("resolved_task_id",),
                 registry=registry)
    gauges = [Gauge(name, name, IDENTITY, registry=registry) for name in PER_TARGET]
    now = time.time()
    for i in range(n):
        ident = ("ai_transcription", "ap-guangzhou", task_id(i), "", "")
        for state in STATES:
            status.labels(*ident, state).set(1.0 if state == "InProgress" else 0.0)
        info.labels(*ident, task_id(i)).set(1.0)
        for gauge in gauges:
            gauge.labels(*ident).set(now)
    return registry


def series(text: bytes) -> int:
    return sum(1 for line in text.splitlines() if line and not line.startswith(b"#"))


def time_renders(registries: list[Any], repeat: int) -> tuple[list[float], list[bytes]]:
    """Best of ``repeat`` renders of each registry, interleaved so both see the same load."""
    from prometheus_client import generate_latest

    best = [float("inf")] * len(registries)
    texts = [b""] * len(registries)
    for _ in range(repeat):
        for i, registry in enumerate(registries):
            started = time.perf_counter()
            texts[i] = generate_latest(registry)
            best[i] = min(best[i], time.perf_counter() - started)
    return best, texts


def child(kind: str, n: int) -> None:
    """In a fresh process: build, render once, print RSS as JSON."""
    from prometheus_client import generate_latest

    started = time.perf_counter()
    registry = filled_exporter(n).registry if kind == "exporter" else baseline_registry(n)
    built = time.perf_counter() - started
    text = generate_latest(registry)
    status = proc_status()
    print(json.dumps({"kind": kind, "targets": n, "rss": status["VmRSS"], "hwm": status["VmHWM"],
                      "series": series(text), "bytes": len(text), "build_seconds": built}))


def rss_of(kind: str, n: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(n)], check=True,
                         capture_output=True, text=True, timeout=300)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure(n: int, repeat: int) -> dict[str, Any]:
    app = filled_exporter(n)
    baseline = baseline_registry(n)
    (ours, theirs), (text, base_text) = time_renders([app.registry, baseline], repeat)
    task_series = sum(1 for line in text.splitlines()
                      if line.startswith(b"trtc_ai_transcription_") and b"task_id=" in line)
    del app, baseline
    rss, base_rss = rss_of("exporter", n), rss_of("baseline", n)
    return {
        "targets": n, "repeat": repeat, "render_seconds": ours,
        "baseline_render_seconds": theirs, "ratio": ours / theirs,
        "series": series(text), "task_series": task_series,
        "baseline_series": series(base_text), "bytes": len(text),
        "baseline_bytes": len(base_text), "rss_bytes": rss["rss"], "hwm_bytes": rss["hwm"],
        "baseline_rss_bytes": base_rss["rss"], "baseline_hwm_bytes": base_rss["hwm"],
        "build_seconds": rss["build_seconds"],
    }


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    results = []
    for n in SIZES:
        repeat = (2 if quick else 5) if n > 1000 else (5 if quick else 15)
        log(f"(e) /metrics render and RSS at {n} targets ({repeat} renders)")
        r = measure(n, repeat)
        log(f"    render {r['render_seconds'] * 1000:.1f} ms vs client_python "
            f"{r['baseline_render_seconds'] * 1000:.1f} ms = {r['ratio']:.2f}x "
            f"({r['series']} series); RSS {r['rss_bytes'] / 2**20:.0f} MB "
            f"(baseline {r['baseline_rss_bytes'] / 2**20:.0f} MB)")
        results.append(r)
    data = {"name": "render", "quick": quick, "limit": LIMIT, "runs": results}
    return finish_run(out, data, results, plot, summary_rows)


def summary_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in runs:
        n = f"{r['targets']:,}".replace(",", " ")
        rows.append(("(e) /metrics", f"render time vs client_python, {n} targets",
                     f"<= {GOAL_RATIO:g}x",
                     f"{r['ratio']:.2f}x ({r['render_seconds'] * 1000:.1f} vs "
                     f"{r['baseline_render_seconds'] * 1000:.1f} ms, {r['series']} series)",
                     "PASS" if r["ratio"] <= GOAL_RATIO else "MISS"))
        goal = r["targets"] >= 10_000
        rows.append(("(e) /metrics", f"RSS after build+render, {n} targets",
                     "<= 120 MB" if goal else "report",
                     f"{r['rss_bytes'] / 2**20:.0f} MB (peak {r['hwm_bytes'] / 2**20:.0f}; "
                     f"client_python {r['baseline_rss_bytes'] / 2**20:.0f})",
                     ("PASS" if r["hwm_bytes"] <= GOAL_RSS else "MISS") if goal else "INFO"))
    return rows


@plotter("render", 1, 2, figsize=(9, 3.6))
def plot(runs: list[dict[str, Any]], axes: Any) -> None:
    left, right = axes
    labels = [f"{r['targets']}" for r in runs]
    xs = range(len(runs))
    for ax, key, base, unit, scale in (
            (left, "render_seconds", "baseline_render_seconds", "ms", 1000),
            (right, "hwm_bytes", "baseline_hwm_bytes", "MB", 1 / 2**20)):
        ax.bar([x - 0.2 for x in xs], [r[key] * scale for r in runs], 0.4, label="exporter")
        ax.bar([x + 0.2 for x in xs], [r[base] * scale for r in runs], 0.4,
               label="client_python Gauges")
        ax.set_xticks(list(xs), labels)
        ax.set_xlabel("targets")
        ax.set_ylabel(unit)
        ax.legend(fontsize=8)
    left.set_title("render time (best of runs)")
    right.set_title("peak RSS (VmHWM)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]))
    else:
        run_standalone(__doc__, run)
