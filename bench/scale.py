"""(h) Issue 16 in one run: the old path and the new one side by side, as ratios.

In-process, one machine, interleaved (the machine is shared; medians are reported):

- /metrics at 10 000 targets: client_python's bare ``generate_latest`` of the same samples
  (the baseline of ``render.py``), the reference rendering through client_python alone
  (``generate_latest(exporter.registry)``, what /metrics served before: "before"), and the
  pre-rendered exposition (``exporter.exposition.render``: "after") on a first scrape (every
  target rendered) and on a scrape that finds nothing changed;
- 20 concurrent scrapers of /metrics at 1 000 targets through the exporter's HTTP server for a
  few seconds: median and p99 latency;
- loading a 10 000-target YAML: the pure-Python strict loader ("before") and the libyaml one;
- one registration and one removal at 10 000 registered targets (``Exporter.register`` /
  ``unregister``, SQLite registry): "before" is the whole-set apply they used to run
  (``Exporter._apply_targets``), timed on the same exporter;
- bytes per target of RSS at 10 000 targets (fresh subprocess, built and rendered once).

Polling CPU per request and the budget under load are measured by ``cpu.py``/``budget_use.py``
and ``capture_faults.py``; this script does not repeat them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from common import exporter_config, finish_run, log, plotter, run_standalone
from render import baseline_registry, filled_exporter

N = 10_000
SCRAPERS = 20


def _median(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def exposition(repeat: int) -> dict[str, Any]:
    """Render times at N targets: bare client_python, before, after (first and unchanged)."""
    from prometheus_client import generate_latest

    app = filled_exporter(N)
    base = baseline_registry(N)
    started = time.perf_counter()
    body = b"".join(app.exposition.render(generate_latest))
    first = time.perf_counter() - started
    rounds: dict[str, list[float]] = {"baseline": [], "before": [], "after": []}
    for _ in range(repeat):  # interleaved so that all three see the same load
        for name, fn in (("baseline", lambda: generate_latest(base)),
                         ("before", lambda: generate_latest(app.registry)),
                         ("after", lambda: b"".join(app.exposition.render(generate_latest)))):
            started = time.perf_counter()
            fn()
            rounds[name].append(time.perf_counter() - started)
    med = {k: statistics.median(v) for k, v in rounds.items()}
    return {"targets": N, "bytes": len(body), "first_scrape_seconds": first,
            "baseline_seconds": med["baseline"], "before_seconds": med["before"],
            "unchanged_seconds": med["after"], "first_ratio": first / med["baseline"],
            "unchanged_ratio": med["after"] / med["baseline"],
            "before_ratio": med["before"] / med["baseline"]}


def scrape_child(url: str, seconds: float) -> None:
    """In a separate process (as Prometheus is): SCRAPERS threads scraping in a loop."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    def loop() -> None:
        with requests.Session() as session:
            while time.monotonic() < stop:
                started = time.perf_counter()
                session.get(url, headers={"Accept-Encoding": "gzip"}, timeout=30).raise_for_status()
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=loop) for _ in range(SCRAPERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(latencies))


def scrapers(seconds: float) -> dict[str, Any]:
    """SCRAPERS scrapers of /metrics (gzip, as Prometheus asks) of 1 000 targets, in a loop."""
    from tests.conftest import serving

    app = filled_exporter(1000)
    with serving(app) as base:
        out = subprocess.run([sys.executable, __file__, "--scrape", base + "/metrics",
                              str(seconds)], check=True, capture_output=True, text=True,
                             timeout=seconds + 120)
    latencies = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"targets": 1000, "scrapers": SCRAPERS, "seconds": seconds,
            "scrapes": len(latencies), "median_seconds": statistics.median(latencies),
            "p99_seconds": latencies[int(0.99 * (len(latencies) - 1))]}


def yaml_load(repeat: int) -> dict[str, Any]:
    from trtc_exporter import yamlload

    text = yaml.safe_dump(exporter_config(N, "http://127.0.0.1:9"))
    pure = _median(lambda: yamlload._load_pure(text), repeat)
    fast = _median(lambda: yamlload.load_yaml(text), repeat)
    return {"targets": N, "pure_seconds": pure, "libyaml_seconds": fast, "ratio": fast / pure}


def registration(repeat: int) -> dict[str, Any]:
    from trtc_exporter.api.credentials import Credentials, StaticProvider
    from trtc_exporter.app import Exporter
    from trtc_exporter.clock import FakeClock
    from trtc_exporter.config.model import parse_config
    from trtc_exporter.secret import Secret
    from trtc_exporter.target import Target

    work = Path(tempfile.mkdtemp(prefix="trtc-bench-scale-"))
    (work / "token").write_text("bench-registration-token\n")
    config = parse_config({"api": {"endpoint": "http://127.0.0.1:9"}, "max_targets": 3 * N,
                           "registration": {"enabled": True, "db_path": str(work / "r.db"),
                                            "bearer_token_file": str(work / "token")}})
    creds = StaticProvider(Credentials(Secret("AKID" + "x" * 16), Secret("k" * 24)), "env")
    app = Exporter(config, creds, clock=FakeClock())

    def target(name: str) -> Target:
        return Target("ai_transcription", "ap-guangzhou", task_id=name, source="api")

    app.register([target(f"t-{i}") for i in range(N)], None)
    names = iter(range(10 * repeat))
    add = _median(lambda: app.register([target(f"x-{next(names)}")], None), repeat)
    ids = iter(target(f"x-{i}").id for i in range(repeat))
    remove = _median(lambda: app.unregister(next(ids)), repeat)
    whole = _median(lambda: app._apply_targets(announce=False), repeat)
    app.sources.close()
    return {"targets": N, "register_seconds": add, "unregister_seconds": remove,
            "whole_apply_seconds": whole}


def rss_child() -> None:
    """In a fresh process: RSS before and after building N targets and rendering once."""
    from common import proc_status
    from prometheus_client import generate_latest

    before = proc_status()["VmRSS"]
    app = filled_exporter(N)
    b"".join(app.exposition.render(generate_latest))
    after = proc_status()
    print(json.dumps({"base": before, "rss": after["VmRSS"], "hwm": after["VmHWM"]}))


def memory() -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--rss"], check=True, capture_output=True,
                         text=True, timeout=600)
    r: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    r["bytes_per_target"] = (r["rss"] - r["base"]) / N
    return r


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    repeat = 3 if quick else 7
    log(f"(h) scale: exposition, scrapers, YAML, registration, memory at {N} targets")
    result = {"exposition": exposition(repeat), "scrapers": scrapers(10 if quick else 30),
              "yaml": yaml_load(repeat), "registration": registration(repeat),
              "memory": memory()}
    data = {"name": "scale", "quick": quick, "runs": [result]}
    return finish_run(out, data, [result], plot, summary_rows)


def summary_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    r = runs[0]
    e, s, y, g, m = (r["exposition"], r["scrapers"], r["yaml"], r["registration"],
                     r["memory"])
    ms = 1000.0

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    return [
        ("(h) scale", "/metrics 10 000 targets: before (client_python path) vs bare",
         "report", f"{e['before_ratio']:.2f}x ({e['before_seconds'] * ms:.0f} vs "
         f"{e['baseline_seconds'] * ms:.0f} ms)", "INFO"),
        ("(h) scale", "/metrics 10 000 targets: first scrape (all rendered) vs bare",
         "<= 0.25x", f"{e['first_ratio']:.3f}x ({e['first_scrape_seconds'] * ms:.0f} ms)",
         verdict(e["first_ratio"] <= 0.25)),
        ("(h) scale", "/metrics 10 000 targets: nothing changed vs bare", "<= 0.05x",
         f"{e['unchanged_ratio']:.3f}x ({e['unchanged_seconds'] * ms:.0f} ms)",
         verdict(e["unchanged_ratio"] <= 0.05)),
        ("(h) scale", f"{s['scrapers']} scrapers, 1 000 targets, gzip: median / p99",
         "p99 < 0.5 s", f"{s['median_seconds'] * ms:.0f} / {s['p99_seconds'] * ms:.0f} ms "
         f"({s['scrapes']} scrapes)", verdict(s["p99_seconds"] < 0.5)),
        ("(h) scale", "YAML 10 000 targets: pure loader / libyaml", "<= 0.3 s",
         f"{y['pure_seconds']:.2f} / {y['libyaml_seconds']:.2f} s ({y['ratio']:.2f}x)",
         verdict(y["libyaml_seconds"] <= 0.3)),
        ("(h) scale", "at 10 000: register one / remove one / whole-set apply (before)",
         "<= 5 ms", f"{g['register_seconds'] * ms:.1f} / {g['unregister_seconds'] * ms:.2f} / "
         f"{g['whole_apply_seconds'] * ms:.0f} ms",
         verdict(max(g["register_seconds"], g["unregister_seconds"]) <= 0.005)),
        ("(h) scale", "RSS at 10 000 targets (after build + render)", "<= 80 MB",
         f"{m['rss'] / 2**20:.0f} MB (peak {m['hwm'] / 2**20:.0f}); "
         f"{m['bytes_per_target']:.0f} B/target", verdict(m["rss"] <= 80 * 2**20)),
    ]


@plotter("scale", 1, 2, figsize=(9, 3.6))
def plot(runs: list[dict[str, Any]], axes: Any) -> None:
    left, right = axes
    e, g = runs[0]["exposition"], runs[0]["registration"]
    bars = {"client_python\nbare": e["baseline_seconds"], "before": e["before_seconds"],
            "after\nfirst": e["first_scrape_seconds"], "after\nunchanged": e["unchanged_seconds"]}
    left.bar(list(bars), [v * 1000 for v in bars.values()])
    left.set_ylabel("ms")
    left.set_title(f"/metrics render, {e['targets']} targets (median)")
    ops = {"whole-set\napply (before)": g["whole_apply_seconds"],
           "register one": g["register_seconds"], "remove one": g["unregister_seconds"]}
    right.bar(list(ops), [v * 1000 for v in ops.values()])
    right.set_ylabel("ms")
    right.set_title(f"target-set change at {g['targets']} targets")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rss"]:
        rss_child()
    elif sys.argv[1:2] == ["--scrape"]:
        scrape_child(sys.argv[2], float(sys.argv[3]))
    else:
        run_standalone(__doc__, run)
