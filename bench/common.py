"""Shared helpers of the benchmarks: targets, the simulator and exporter processes, /proc readers.

Everything runs on 127.0.0.1. Processes are the installed console script
``trtc-transcription-exporter`` (the exporter, and its ``simulate`` subcommand), so what is
measured is what users run. In-process helpers (a FakeClock transport into ``SimulatorAPI``) are
here too, for the cases that would take too long in real time.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests
import yaml

# The process helpers are the integration tests' (tests/integration/harness.py); the repository
# root is on sys.path for them when a benchmark runs as ``python bench/<module>.py``.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.integration import harness  # noqa: E402
from tests.integration.harness import free_port  # noqa: E402

EXE = harness.EXE
# a fake key pair, valid only against the simulator processes the benchmarks start
SECRET_ID = "AKIDbenchmark000000000000000000000001"  # noqa: S105
SECRET_KEY = "benchmarkSECRETkey000000000000000000001"  # noqa: S105
ACTION = "DescribeAITranscription"
SDK_APP_ID = 1400000001
LIMIT = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- targets and scenarios ----------------------------------------------------------------------
def task_id(i: int) -> str:
    return f"bench-task-{i:05d}"


def targets(n: int) -> list[dict[str, Any]]:
    """n 1.0 TaskId targets (one action, one budget lane)."""
    return [{"task_id": task_id(i)} for i in range(n)]


def scenario(n: int, *, rate_limit: int = LIMIT, faults: Iterable[dict[str, Any]] = ()
             ) -> dict[str, Any]:
    """A simulator account whose n tasks are InProgress for the whole run."""
    return {
        "seed": 42,
        "credentials": [{"secret_id": SECRET_ID, "secret_key": SECRET_KEY}],
        "rate_limit": rate_limit,
        "tasks": [{"task_id": task_id(i), "sdk_app_id": SDK_APP_ID, "start_offset": -10,
                   "phases": {"idle": 1, "preparing": 2, "in_progress": "10h"}}
                  for i in range(n)],
        "faults": list(faults),
    }


def exporter_config(n: int, endpoint: str, *, poll_interval: str = "15s",
                    rate_limit: float = LIMIT) -> dict[str, Any]:
    return {"api": {"endpoint": endpoint, "rate_limit": rate_limit, "timeout": "6s"},
            "poll_interval": poll_interval, "targets": targets(n)}


def latency_fault(seconds: float, spread: float = 0.1) -> dict[str, Any]:
    """A narrow uniform latency (±spread) around ``seconds`` on every API answer."""
    return {"kind": "latency", "distribution": "uniform",
            "min": round(seconds * (1 - spread), 4), "max": round(seconds * (1 + spread), 4)}


# -- processes ----------------------------------------------------------------------------------
# the harness's wait_for, failing with RuntimeError (a benchmark is not a test assertion)
wait_for = functools.partial(harness.wait_for, error=RuntimeError)


class Process(harness.Process):
    """A child process of the console script, output in a log file; with /proc readings."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def rss_bytes(self) -> int:
        return proc_status(self.pid).get("VmRSS", 0)

    def tail(self, chars: int = 3000) -> str:
        return self.output()[-chars:]


class Simulator(Process):
    """``trtc-transcription-exporter simulate`` with a scenario, plus its control endpoints."""

    def __init__(self, workdir: Path, scenario_doc: dict[str, Any]) -> None:
        path = workdir / "scenario.yml"
        path.write_text(yaml.safe_dump(scenario_doc))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["simulate", "--listen", f"127.0.0.1:{self.port}", "--scenario",
                          str(path), "--log.level", "warn"], workdir / "simulator.log")
        self.http = requests.Session()
        wait_for(lambda: self.http.get(self.url + "/_sim/stats", timeout=2).ok, 30,
                 "simulator to listen")

    def control(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        resp = self.http.request(method, f"{self.url}/_sim/{path}", json=body, timeout=10)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def stats(self) -> dict[str, Any]:
        return self.control("GET", "stats")


class Exporter(Process):
    """The exporter process on a config; ready once its first poll cycle is done."""

    def __init__(self, workdir: Path, config: dict[str, Any], *, wait_ready: float = 0,
                 env: dict[str, str] | None = None) -> None:
        path = workdir / "exporter.yml"
        path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        creds = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
        super().__init__(["--config.file", str(path), "--web.listen-address",
                          f"127.0.0.1:{self.port}", "--log.level", "warn"],
                         workdir / "exporter.log", {**creds, **(env or {})})
        self.http = requests.Session()
        wait_for(lambda: self.http.get(self.url + "/-/healthy", timeout=2).ok, 30,
                 "exporter to listen")
        if wait_ready:
            wait_for(lambda: self.http.get(self.url + "/-/ready", timeout=2).ok, wait_ready,
                     "exporter to be ready")

    def metrics_text(self) -> str:
        return self.http.get(self.url + "/metrics", timeout=10).text

    def value(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics (plain text parse: our own names, no escapes needed)."""
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in self.metrics_text().splitlines():
            if line.startswith("#") or not line.startswith(name):
                continue
            head, _, val = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric != name:
                continue
            have = ",".join(sorted(p for p in rest.rstrip("}").split(",") if p))
            if not labels or all(f'{k}="{v}"' in have for k, v in labels.items()) or want == have:
                return float(val)
        return None

    def total(self, name: str) -> float:
        """The sum of every sample of one metric on /metrics (0 when absent)."""
        from prometheus_client.parser import text_string_to_metric_families

        return sum(sample.value for family in text_string_to_metric_families(self.metrics_text())
                   for sample in family.samples if sample.name == name)

    def target_rows(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.http.get(self.url + "/api/v1/targets",
                                                   timeout=30).json()["data"]
        return rows


class Replicas:
    """``count`` exporter processes coordinated through one redis-server of their own.

    Each replica runs ``config`` plus a ``coordination:`` block (cluster ``bench``, ``heartbeat``)
    in its own folder under ``workdir``; Redis is the integration tests' ``RedisProcess``
    (127.0.0.1, a free port, no persistence).
    """

    def __init__(self, workdir: Path, config: dict[str, Any], count: int,
                 heartbeat: float = 1.0) -> None:
        from tests.coordination.conftest import RedisProcess

        self.redis = RedisProcess(workdir)
        self.redis.start()
        self.config = {**config, "coordination": {"redis_url": self.redis.url,
                                                  "cluster": "bench",
                                                  "heartbeat": f"{heartbeat:g}s"}}
        self.exporters: list[Exporter] = []
        try:
            for i in range(count):
                folder = workdir / f"replica-{i}"
                folder.mkdir()
                self.exporters.append(Exporter(folder, self.config))
        except BaseException:
            self.stop()
            raise

    def live(self) -> list[Exporter]:
        return [e for e in self.exporters if e.proc.poll() is None]

    def stop(self) -> None:
        for exporter in self.exporters:
            exporter.stop()
        self.redis.stop()


class Workdir:
    """A temporary folder for configs and logs, removed at exit unless TRTC_BENCH_KEEP=1."""

    def __init__(self, name: str) -> None:
        self.path = Path(tempfile.mkdtemp(prefix=f"trtc-bench-{name}-"))
        if os.environ.get("TRTC_BENCH_KEEP") != "1":
            atexit.register(shutil.rmtree, self.path, ignore_errors=True)


# -- /proc --------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """The CPU time of a process, all its threads (ended ones included), in seconds, from the
    kernel's per-process CPU clock (clock_getcpuclockid(3): ``((~pid) << 3) | 2`` on Linux):
    nanoseconds, where ``/proc/<pid>/stat``'s utime + stime count 10 ms ticks (3 % of a 20 s
    window at 20 req/s). Falls back to /proc when the clock cannot be read."""
    try:
        return time.clock_gettime(((~pid) << 3) | 2)
    except OSError:
        raw = Path(f"/proc/{pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of stat(5)


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The kB fields of /proc/<pid>/status (VmRSS, VmHWM, ...) in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = int(parts[0]) * 1024
    return out


# -- simulator stats ------------------------------------------------------------------------------
def per_second(stats: dict[str, Any], action: str = ACTION) -> dict[int, int]:
    return {int(k): v for k, v in stats.get("per_second", {}).get(action, {}).items()}


def full_seconds(counts: dict[int, int], start: float, end: float) -> list[int]:
    """Counts of the whole wall-clock seconds inside [start, end) (partial ones left out)."""
    return [counts.get(s, 0) for s in range(math.ceil(start), math.floor(end))]


def code_count(stats: dict[str, Any], prefix: str, action: str = ACTION) -> int:
    return sum(n for code, n in stats.get("by_action", {}).get(action, {}).items()
               if code.startswith(prefix))


def answers(stats: dict[str, Any], action: str = ACTION) -> int:
    return sum(stats.get("by_action", {}).get(action, {}).values())


# -- statistics and output ----------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def save_json(out: Path | None, name: str, data: dict[str, Any]) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True, default=str))


def pyplot() -> Any:
    """matplotlib.pyplot with a non-interactive backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plotter(name: str, *args: Any, **kwargs: Any
            ) -> Callable[[Callable[[Any, Any], None]], Callable[[Any, Path | None], None]]:
    """Turn ``draw(runs, axes)`` into ``plot(runs, out)``, which draws on
    ``plt.subplots(*args, **kwargs)`` and saves out/<name>.png; a no-op without an output folder
    or matplotlib."""
    def decorate(draw: Callable[[Any, Any], None]) -> Callable[[Any, Path | None], None]:
        @functools.wraps(draw)
        def plot(runs: Any, out: Path | None) -> None:
            plt = pyplot()
            if plt is None or out is None:
                return
            fig, axes = plt.subplots(*args, **kwargs)
            draw(runs, axes)
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=110)
            plt.close(fig)
        return plot
    return decorate


def finish_run(out: Path | None, data: dict[str, Any], runs: Any,
               plot: Callable[[Any, Path | None], None],
               summary_rows: Callable[..., list[tuple[str, str, str, str, str]]],
               *row_args: Any) -> dict[str, Any]:
    """Save data as out/<data["name"]>.json, plot the runs, then add the summary table's rows
    (``summary_rows(runs, *row_args)``, not saved in the JSON); returns data."""
    save_json(out, data["name"], data)
    plot(runs, out)
    data["rows"] = summary_rows(runs, *row_args)
    return data


def stop_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops the processes it started."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def standalone_args(doc: str) -> Any:
    """The flags every benchmark module takes when run alone."""
    import argparse

    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out",
                        help="folder for the JSON results and PNG plots (default bench/out)")
    return parser.parse_args()


def run_standalone(doc: str | None, run: Callable[[bool, Path], dict[str, Any]]) -> None:
    """A benchmark module run alone: its flags, its run(quick, out), its summary rows printed."""
    args = standalone_args(doc or "")
    data = run(args.quick, args.out)
    for row in data["rows"]:
        print(" | ".join(row))


# -- in-process: a requests transport into SimulatorAPI ------------------------------------------
class SimulatorTransport:
    """Faked at the HTTP boundary: requests go to ``SimulatorAPI.handle`` without a socket.

    The answer is a ``transport.Reply`` as the client gets it from its transport; no write is
    reported (the client reports it once the attempt ends). The simulator's answer delay is
    ignored (time is the FakeClock's, advanced by the budget).
    """

    def __init__(self, api: Any) -> None:
        self.api = api

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Any:
        from trtc_exporter.api.transport import Reply

        result = self.api.handle("POST", dict(headers), body)
        return Reply(result.status, None, result.body if result.status == 200 else b"")


def in_process_exporter(n: int, *, poll_interval: float = 15.0, rate_limit: float = LIMIT) -> Any:
    """An Exporter on an auto-advancing FakeClock whose HTTP goes into an in-process simulator.

    Returns (exporter, clock, simulator_api). Nothing runs until the caller drives the poller.
    """
    from trtc_exporter.api.credentials import Credentials, StaticProvider
    from trtc_exporter.app import Exporter as App
    from trtc_exporter.clock import FakeClock
    from trtc_exporter.config.model import parse_config
    from trtc_exporter.secret import Secret
    from trtc_exporter.simulator import SimulatorAPI, parse_scenario

    clock = FakeClock(start=time.time(), auto_advance=True)
    api = SimulatorAPI(parse_scenario(scenario(n, rate_limit=int(rate_limit))), clock)
    config = parse_config(exporter_config(n, "http://sim.invalid", rate_limit=rate_limit,
                                          poll_interval=f"{poll_interval:g}s"))
    creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
    app = App(config, creds, clock=clock,
              http=SimulatorTransport(api))
    return app, clock, api
