"""Run every benchmark and print one summary table: ``python bench/run.py [--quick] [--out DIR]``.

Benchmarks print numbers and ratios against the goals of the design; PASS/MISS is informational,
nothing here fails a build. Raw results go to ``DIR/*.json`` (and ``DIR/summary.json``), plots to
``DIR/*.png`` when matplotlib is installed (``pip install -e '.[bench]'``). Everything runs against
the simulator on 127.0.0.1. ``--only a,c`` runs a subset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aimd  # the benchmark modules beside this script (sys.path[0] when run as a script)
import budget_load
import budget_use
import cpu
import ha
import register
import render
import scale
import staleness
from common import log, pyplot, stop_on_sigterm

ORDER = ("f", "e", "h", "a", "d", "b", "c", "i", "k")
QUICK_SKIP = {"k"}  # a minute of packet capture: in the full run, or asked for with --only


def revision() -> str:
    """The checkout measured: short commit, "+dirty" with uncommitted package changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=5, check=True).stdout
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "exporter"],
                               capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.strip() + ("+dirty" if dirty.strip() else "")


def machine() -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "revision": revision(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "load_average": os.getloadavg(),
        "trtc_exporter": version("trtc-transcription-exporter"),
        "prometheus_client": version("prometheus-client"),
    }


def table(rows: list[tuple[str, ...]]) -> str:
    head = ("benchmark", "measure", "goal", "measured", "result")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 5 minutes)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out",
                        help="folder for JSON results and PNG plots (default bench/out)")
    parser.add_argument("--only", default=None,
                        help="comma-separated subset of a,b,c,d,e,f,h,i,k (default: all; "
                             "--quick leaves out k unless named here)")
    args = parser.parse_args()
    stop_on_sigterm()
    default = set(ORDER) - (QUICK_SKIP if args.quick else set())
    wanted = ({x.strip() for x in args.only.split(",") if x.strip()} if args.only is not None
              else default)
    unknown = wanted - set(ORDER)
    if unknown:
        parser.error(f"--only: unknown benchmark(s) {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    info = machine()
    log(f"benchmarks ({'quick' if args.quick else 'full'}) on {info['cpus']} CPUs, load "
        f"{info['load_average'][0]:.2f}; results in {args.out}")
    started = time.monotonic()
    results: dict[str, Any] = {}
    timings: dict[str, float] = {}
    for key in ORDER:
        if key not in wanted:
            continue
        t0 = time.monotonic()
        if key == "a":
            results[key] = budget_use.run(args.quick, args.out)
        elif key == "b":
            results[key] = aimd.run(args.quick, args.out)
        elif key == "c":
            results[key] = staleness.run(args.quick, args.out)
        elif key == "d":
            results[key] = cpu.run(args.quick, args.out)
        elif key == "e":
            results[key] = render.run(args.quick, args.out)
        elif key == "k":
            results[key] = budget_load.run(args.quick, args.out)
        elif key == "h":
            results[key] = scale.run(args.quick, args.out)
        elif key == "f":
            results[key] = register.run(args.quick, args.out)
        else:
            results[key] = ha.run(args.quick, args.out)
        timings[key] = time.monotonic() - t0
    rows = [row for key in sorted(results) for row in results[key]["rows"]]
    info["load_average_end"] = os.getloadavg()
    info["seconds"] = time.monotonic() - started
    info["seconds_per_benchmark"] = timings
    summary = {"machine": info, "quick": args.quick, "rows": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    print()
    print(f"trtc-transcription-exporter {info['trtc_exporter']} ({info['revision']}) benchmarks, "
          f"{info['date']}, "
          f"{info['cpus']} CPUs, Python {info['python']}, "
          f"{'quick' if args.quick else 'full'} run in {info['seconds']:.0f} s "
          f"(load average {info['load_average'][0]:.2f} -> {info['load_average_end'][0]:.2f})")
    print()
    print(table(rows))
    print()
    print("PASS/MISS compare with the design goals and are informational; see bench/README.md.")
    plots = sorted(p.name for p in args.out.glob("*.png"))
    if pyplot() is None:
        print("plots: matplotlib not installed (pip install -e '.[bench]')")
    else:
        print(f"plots in {args.out}: {', '.join(plots) or 'none'}")
    print(f"raw results: {args.out}/*.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
