"""(g) The simulator's own rate window against a packet capture, for every simulator fault.

For each fault, the exporter process polls a simulator process with enough InProgress targets to
need 1.5 times the budget (150 targets at poll_interval 5 s; --quick: 100), with the fault on every
request at the given probability. After a warm-up, tshark on ``lo`` records the kernel timestamp of
each API request start (``tests/integration/capture.py``) while the simulator counts the same
requests; then both "most requests in any sliding 1 s window" are printed side by side, with the
simulator's own RequestLimitExceeded answers (its limiter's, not a storm fault's) and the number of
requests each side saw. A trustworthy simulator window equals the capture's (±1 at a window edge)
and throttles nothing the capture shows as within the limit.

Run alone: ``python bench/capture_faults.py [--quick] [--only huge_body,latency]`` (root or the
``wireshark`` group, for tshark). Not part of ``run.py``: it takes about 20 s per fault.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from common import (
    LIMIT,
    ROOT,
    Exporter,
    Simulator,
    Workdir,
    exporter_config,
    log,
    save_json,
    scenario,
    stop_on_sigterm,
)
from tests.integration.capture import PostCapture, max_in_window

TARGETS = 150
QUICK_TARGETS = 100
FAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "latency": {"kind": "latency", "distribution": "uniform", "min": 0.05, "max": 0.8},
    "timeout": {"kind": "timeout", "seconds": 8, "probability": 0.1},
    "http_error": {"kind": "http_error", "status": 502, "probability": 0.5},
    "malformed_json": {"kind": "malformed_json", "probability": 0.5},
    "missing_fields": {"kind": "missing_fields", "probability": 0.5},
    "wrong_types": {"kind": "wrong_types", "probability": 0.5},
    "huge_body": {"kind": "huge_body"},
    "unknown_status": {"kind": "unknown_status", "probability": 0.5},
    "unknown_error_code": {"kind": "unknown_error_code", "probability": 0.5},
    "internal_error": {"kind": "internal_error", "probability": 0.5},
    "connection_reset": {"kind": "connection_reset", "probability": 0.5},
    "trickle_body": {"kind": "trickle_body", "chunk_bytes": 64, "interval": 0.1,
                     "probability": 0.2},
    "request_limit_storm": {"kind": "request_limit_storm", "probability": 0.2},
    "auth_failure": {"kind": "auth_failure", "probability": 0.5},
    "rate_limit_drop": {"kind": "rate_limit_drop", "limit": 15},
}
"""Fault name -> spec applied to every request (probability 1 unless given)."""


def measure(name: str, targets: int, warmup: float, seconds: float) -> dict[str, Any]:
    """One fault: capture and simulator peaks over the same ``seconds`` of steady polling."""
    work = Workdir(f"capture-{name}").path
    faults = [FAULTS[name]] if FAULTS[name] else []
    sim = Simulator(work, scenario(targets, faults=faults))
    exporter = None
    try:
        exporter = Exporter(work, exporter_config(targets, sim.url, poll_interval="5s"))
        time.sleep(warmup)
        with PostCapture(sim.port) as capture:
            start = time.time()
            sim.control("POST", "reset_stats")
            time.sleep(seconds)
            end = time.time()
            stats = sim.stats()
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    windows = stats["windows"]
    # the simulator counted from its reset to the stats request: compare the same interval
    times = [t for t in capture.times if start <= t <= end]
    return {
        "fault": name,
        "limit": min((w["limit"] for w in windows), default=LIMIT),
        "capture_max_in_window": max_in_window(times),
        "capture_max_in_window_with_edges": max_in_window(capture.times),
        "capture_requests": len(times),
        "capture_dropped": capture.dropped,
        "simulator_max_in_window": stats["max_in_window"],
        "simulator_requests": stats["requests_total"],
        "simulator_throttled": stats.get("throttled_total",
                                         stats["by_code"].get("RequestLimitExceeded", 0)),
        "arrival_stamps": stats.get("arrival_stamps", {}),
        "arrival_lag_seconds": stats.get("arrival_lag_seconds", {}),
    }


def _lag(result: dict[str, Any]) -> str:
    lag = result["arrival_lag_seconds"]
    return f"{lag['max'] * 1000:.0f}/{lag['mean'] * 1000:.1f}" if lag else "-"


def table(results: list[dict[str, Any]]) -> str:
    head = ("fault", "limit", "capture max/1s", "simulator max/1s", "sim throttled",
            "requests capture/sim", "handler lag max/mean ms")
    rows = [head] + [
        (r["fault"], str(r["limit"]), str(r["capture_max_in_window"]),
         str(r["simulator_max_in_window"]), str(r["simulator_throttled"]),
         f"{r['capture_requests']}/{r['simulator_requests']}", _lag(r))
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs, fewer targets")
    parser.add_argument("--only", default="", help="comma-separated fault names (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    stop_on_sigterm()
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"--only: unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
    targets = QUICK_TARGETS if args.quick else TARGETS
    warmup, seconds = (6.0, 10.0) if args.quick else (8.0, 15.0)
    results = []
    for name in names:
        log(f"capture: {name}")
        results.append(measure(name, targets, warmup, seconds))
    save_json(args.out, "capture_faults", {"name": "capture_faults", "results": results})
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
