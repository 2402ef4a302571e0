"""(d) CPU seconds of the exporter process per 1 000 API requests.

utime + stime of the real exporter process (all threads, from ``/proc/<pid>/stat``) over the
measurement window of benchmark (a), divided by the requests the simulator received in it. The
exporter runs at its full budget (about 19.6 req/s), so the number includes everything a busy
exporter does besides requests: dispatcher wake-ups, replanning once a second, idle workers.
``run.py`` reuses the three runs of (a); run alone, this module does one 20 ms run itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import budget_use
from common import log, run_standalone, save_json


def run(quick: bool = False, out: Path | None = None,
        budget: dict[str, Any] | None = None) -> dict[str, Any]:
    if budget is None:
        log("(d) CPU per 1000 requests: one run at 20 ms latency")
        runs = [budget_use.measure(0.02, 9.0, 2.0 if quick else 3.0)]
    else:
        runs = budget["runs"]
    results = [{
        "latency_seconds": r["latency_seconds"], "requests": r["requests"],
        "cpu_seconds": r["cpu_seconds"], "wall_seconds": r["wall_seconds"],
        "cpu_seconds_per_1000_requests": r["cpu_seconds_per_1000_requests"],
        "cpu_utilisation": r["cpu_seconds"] / r["wall_seconds"],
    } for r in runs]
    for r in results:
        log(f"    {r['latency_seconds'] * 1000:.0f} ms: {r['cpu_seconds_per_1000_requests']:.2f} "
            f"CPU s per 1000 requests ({r['cpu_utilisation']:.1%} of one core)")
    data = {"name": "cpu", "quick": quick, "runs": results}
    save_json(out, "cpu", data)
    data["rows"] = [
        ("(d) CPU", f"CPU s / 1000 requests @ {r['latency_seconds'] * 1000:.0f} ms", "report",
         f"{r['cpu_seconds_per_1000_requests']:.2f} s ({r['cpu_utilisation']:.1%} of a core, "
         f"{r['requests']} req)", "INFO")
        for r in results]
    return data


if __name__ == "__main__":
    run_standalone(__doc__, run)
