"""(k) The budget under load, from packet timestamps: normal, busy CPU, scrapers, a registration
flood and simulator faults.

One exporter process polls one simulator process: 1 000 InProgress targets at
``poll_interval: 15s`` need 67 req/s, so the exporter runs at its 20 req/s budget throughout.
tshark on ``lo`` (``tests/integration/capture.py``) stamps every API request start for the whole
run while the exporter goes through the load conditions one after the other
(``tests/integration/loads.py``): normal; CPU saturated (two busy-loop processes); 20
concurrent scrapers of /metrics (gzip, a separate process); a registration flood (one-target
POST/DELETE /api/v1/targets back to back); the simulator faults huge_body (4 MB answers),
latency (50-800 ms) and connection_reset (half the requests). Each condition settles for a
few seconds, then is counted for ``seconds``; a probe scrapes /metrics every 0.25 s (the
20 scrapers' own latencies in their phase).

Per condition: the most requests in any sliding 1 s window of the capture and of the simulator,
the requests each counted, the share of the budget used (capture requests / seconds / 20) and the
scrape p99. Goal: never above the limit, >= 97 % used under normal load. Needs tshark and the
right to capture on ``lo``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from common import (
    LIMIT,
    Exporter,
    Simulator,
    Workdir,
    exporter_config,
    finish_run,
    log,
    plotter,
    run_standalone,
    scenario,
)
from tests.integration.capture import PostCapture, tshark_available
from tests.integration.loads import (
    Load,
    RegistrationFlood,
    Scrapers,
    busy_loops,
    measure_phase,
    no_load,
    summarise,
)

TARGETS = 1000
TOKEN = "bench-budget-load-token"  # noqa: S105 - a throwaway token for a loopback process
FAULTS: dict[str, dict[str, Any]] = {
    "huge_body": {"kind": "huge_body", "bytes": 4_000_000},
    "latency": {"kind": "latency", "distribution": "uniform", "min": 0.05, "max": 0.8},
    "connection_reset": {"kind": "connection_reset", "probability": 0.5},
}


def phases(url: str) -> list[tuple[str, Load, dict[str, Any] | None]]:
    """(name, load, simulator fault) of each condition, in the order they run."""
    return [
        ("normal", no_load, None),
        ("cpu saturated (2 busy loops)", functools.partial(busy_loops, 2), None),
        ("20 scrapers", lambda s: Scrapers(url + "/metrics", 20, s), None),
        ("registration flood", lambda s: RegistrationFlood(url, TOKEN, s), None),
        *((f"fault {name}", no_load, fault) for name, fault in FAULTS.items()),
    ]


def measure(settle: float, seconds: float) -> list[dict[str, Any]]:
    work = Workdir("budget-load").path
    (work / "token").write_text(TOKEN + "\n")
    sim = Simulator(work, scenario(TARGETS))
    config = exporter_config(TARGETS, sim.url)
    config.update(max_targets=5 * TARGETS, registration={
        "enabled": True, "db_path": str(work / "registry.db"),
        "bearer_token_file": str(work / "token")})
    exporter = None
    raw = []
    try:
        exporter = Exporter(work, config)  # polling from the start: no need to wait a cycle
        with PostCapture(sim.port) as capture:
            for name, load, fault in phases(exporter.url):
                log(f"    {name}")
                raw.append((name, measure_phase(sim, exporter.url + "/metrics", load, fault,
                                                settle, seconds)))
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    return [{"condition": name, "seconds": phase["seconds"], "dropped": capture.dropped,
             **summarise(phase, capture.times, LIMIT)} for name, phase in raw]


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    settle, seconds = (3.0, 6.0) if quick else (6.0, 20.0)
    if not tshark_available():
        log("(k) budget under load: skipped, tshark is not installed")
        return {"name": "budget_load", "rows": [("(k) budget load", "packet capture", "<= 20",
                                                 "skipped: tshark not installed", "INFO")]}
    log(f"(k) budget under load: {TARGETS} targets, {len(phases(''))} conditions of "
        f"{seconds:.0f} s, packet capture on lo")
    runs = measure(settle, seconds)
    print(table(runs))
    data = {"name": "budget_load", "quick": quick, "targets": TARGETS, "runs": runs}
    return finish_run(out, data, runs, plot, summary_rows)


def table(runs: list[dict[str, Any]]) -> str:
    head = ("condition", "capture max/1s", "simulator max/1s", "requests capture/sim",
            "budget used", "throttled", "scrape p99")
    rows = [head] + [
        (r["condition"], str(r["capture_max_in_window"]), str(r["simulator_max_in_window"]),
         f"{r['capture_requests']}/{r['simulator_requests']}", f"{r['budget_used']:.1%}",
         str(r["simulator_throttled"]), f"{r['scrape_p99_seconds'] * 1000:.0f} ms")
        for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in runs:
        ok = r["capture_max_in_window"] <= LIMIT and (r["condition"] != "normal"
                                                      or r["budget_used"] >= 0.97)
        rows.append(("(k) budget load", f"{r['condition']}: capture max/1s, used, scrape p99",
                     "<= 20" + (", >= 97%" if r["condition"] == "normal" else ""),
                     f"{r['capture_max_in_window']} (sim {r['simulator_max_in_window']}), "
                     f"{r['budget_used']:.1%}, {r['scrape_p99_seconds'] * 1000:.0f} ms",
                     "PASS" if ok else "MISS"))
    return rows


@plotter("budget_load", 1, 1, figsize=(9, 3.6))
def plot(runs: list[dict[str, Any]], axes: Any) -> None:
    names = [r["condition"].replace(" (2 busy loops)", "").replace("fault ", "")
             for r in runs]
    xs = range(len(runs))
    axes.bar([x - 0.2 for x in xs], [r["capture_max_in_window"] for r in runs], 0.4,
             label="capture: max in 1 s")
    axes.bar([x + 0.2 for x in xs], [r["budget_used"] * LIMIT for r in runs], 0.4,
             label="mean req/s")
    axes.axhline(LIMIT, color="red", linewidth=1, label="limit")
    axes.set_xticks(list(xs), names, rotation=20, fontsize=8)
    axes.set_ylabel("requests")
    axes.set_title(f"budget under load, {TARGETS} targets (packet capture)")
    axes.legend(fontsize=7, loc="lower right")


if __name__ == "__main__":
    run_standalone(__doc__, run)
