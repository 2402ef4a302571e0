"""(j) Memory at 10 000 targets: RSS of the exporter process over a soak of 20 scrapers, and bytes
per target.

- soak: the exporter process with 10 000 InProgress targets against the simulator, polling at
  ``api.rate_limit: 250`` (simulator limit 1 000) so that every target has an answer within the
  first minute (at 20 req/s the first cycle alone takes 8.5 minutes, and RSS would grow with it);
  once ready, 20 concurrent scrapers of /metrics (gzip, a separate process) run back to back;
  after 10 s (the first scrapes fill the per-target fragment cache, about 20 MB: that is the
  cache, not growth) RSS is sampled every 2 s for the soak; reported: RSS at the start, end
  and peak, the spread (max-min)/mean, and the slope of a least-squares line through the
  samples, in MB/min.
- bytes per target: tracemalloc's traced bytes of an in-process exporter holding one answer per
  target, built and rendered once, at 1 000 and 10 000 targets; the difference / 9 000 is the
  cost of one more target (Python heap only: RSS adds the allocator's slack).

Goal (issue 16): RSS <= 80 MB at 10 000 targets, flat (+-5 %) over 20 minutes. The soak lasts
``--seconds`` (default 240; ``--quick`` 45 in ``run.py``), not 20 minutes: say so when quoting it.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from common import (
    Exporter,
    Simulator,
    Workdir,
    exporter_config,
    finish_run,
    log,
    plotter,
    scenario,
    stop_on_sigterm,
)
from tests.integration.loads import Scrapers

N = 10_000
SCRAPERS = 20
MB = 2**20
WARMUP = 10.0


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def soak(seconds: float, scrapers_count: int = SCRAPERS) -> dict[str, Any]:
    work = Workdir("memory").path
    sim = Simulator(work, scenario(N, rate_limit=1000))
    config = exporter_config(N, sim.url, rate_limit=250)
    config["max_targets"] = N
    exporter = None
    try:
        exporter = Exporter(work, config, wait_ready=180)
        ready_rss = exporter.rss_bytes()
        samples: list[tuple[float, float]] = []
        with Scrapers(exporter.url + "/metrics", scrapers_count, seconds + WARMUP + 30
                      ) as scrapers:
            time.sleep(WARMUP)  # the first scrapes fill the fragment cache: not growth
            warm_rss = exporter.rss_bytes()
            start = time.monotonic()
            while (now := time.monotonic()) - start < seconds:
                samples.append((now - start, exporter.rss_bytes() / MB))
                time.sleep(2.0)
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    values = [v for _, v in samples]
    latencies = sorted(scrapers.latencies)
    return {"targets": N, "seconds": seconds, "scrapers": scrapers_count,
            "ready_rss_mb": ready_rss / MB, "warm_rss_mb": warm_rss / MB,
            "start_mb": values[0], "end_mb": values[-1], "max_mb": max(values),
            "min_mb": min(values), "spread": (max(values) - min(values)) / statistics.fmean(values),
            "slope_mb_per_minute": slope_per_minute(samples), "samples": samples,
            "scrapes": len(latencies),
            "scrape_p99_seconds": latencies[int(0.99 * (len(latencies) - 1))] if latencies
            else None}


def traced_child(n: int) -> None:
    """In a fresh process: tracemalloc's current bytes after building n targets and rendering."""
    from prometheus_client import generate_latest
    from render import filled_exporter

    tracemalloc.start()
    app = filled_exporter(n)
    b"".join(app.exposition.render(generate_latest))
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    print(json.dumps({"targets": n, "traced": current}))


def per_target() -> dict[str, Any]:
    traced = {}
    for n in (1000, N):
        out = subprocess.run([sys.executable, __file__, "--traced", str(n)], check=True,
                             capture_output=True, text=True, timeout=600)
        traced[n] = json.loads(out.stdout.strip().splitlines()[-1])["traced"]
    return {"traced_1000": traced[1000], "traced_10000": traced[N],
            "bytes_per_target": (traced[N] - traced[1000]) / (N - 1000)}


def run(quick: bool = False, out: Path | None = None, seconds: float | None = None
        ) -> dict[str, Any]:
    seconds = seconds or (45.0 if quick else 240.0)
    log(f"(j) memory: {N} targets, {SCRAPERS} scrapers for {seconds:.0f} s; bytes per target")
    result = {"soak": soak(seconds), "per_target": per_target()}
    data = {"name": "memory", "quick": quick, "runs": [result]}
    return finish_run(out, data, [result], plot, summary_rows)


def summary_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    s, p = runs[0]["soak"], runs[0]["per_target"]
    flat = s["spread"] <= 0.10 and abs(s["slope_mb_per_minute"]) * 20 <= 0.05 * s["start_mb"]
    return [
        ("(j) memory", f"RSS at {N} targets, {SCRAPERS} scrapers for {s['seconds']:.0f} s: "
         "start / end / peak", "<= 80 MB", f"{s['start_mb']:.0f} / {s['end_mb']:.0f} / "
         f"{s['max_mb']:.0f} MB (ready, never scraped: {s['ready_rss_mb']:.0f})",
         "PASS" if s["max_mb"] <= 80 else "MISS"),
        ("(j) memory", "RSS under scrapers: spread, slope", "+-5 %",
         f"{s['spread']:.1%}, {s['slope_mb_per_minute']:+.2f} MB/min", "PASS" if flat else "MISS"),
        ("(j) memory", "bytes per target (tracemalloc, 1 000 -> 10 000)", "report",
         f"{p['bytes_per_target']:.0f} B", "INFO"),
    ]


@plotter("memory", 1, 1, figsize=(7, 3.4))
def plot(runs: list[dict[str, Any]], axes: Any) -> None:
    s = runs[0]["soak"]
    axes.plot([t for t, _ in s["samples"]], [v for _, v in s["samples"]], label="RSS")
    axes.axhline(80, color="red", linewidth=1, label="goal 80 MB")
    axes.set_xlabel("seconds of 20 scrapers")
    axes.set_ylabel("MB")
    axes.set_ylim(bottom=0)
    axes.set_title(f"exporter RSS, {N} targets")
    axes.legend(fontsize=8)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 45 s soak")
    parser.add_argument("--seconds", type=float, default=None, help="soak length")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    for row in run(args.quick, args.out, args.seconds)["rows"]:
        print(" | ".join(row))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--traced"]:
        traced_child(int(sys.argv[2]))
    else:
        main()
