"""Load generators for the budget-under-load checks: busy CPU, concurrent scrapers, a registration
flood. Each is a context manager bounded in time (it stops at exit, and by itself after
``seconds`` even if the caller dies), so a failed check never leaves load running.

Used by ``tests/integration/test_budget_load.py`` and ``bench/budget_load.py``. The scrapers run in
a separate process (as Prometheus does), started as ``python -m tests.integration.loads scrape``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any

import requests

from tests.integration.capture import max_in_window

ROOT = Path(__file__).resolve().parent.parent.parent
_BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextmanager
def busy_loops(count: int, seconds: float) -> Iterator[None]:
    """``count`` processes spinning a CPU each, for at most ``seconds`` (killed at exit)."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY.format(seconds=seconds)])
             for _ in range(count)]
    try:
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


class Scrapers:
    """``count`` threads in a child process scraping ``url`` (gzip) back to back for at most
    ``seconds``; ``latencies`` (seconds) is filled when the context exits."""

    def __init__(self, url: str, count: int, seconds: float) -> None:
        self.latencies: list[float] = []
        self._args = [sys.executable, "-m", "tests.integration.loads", "scrape", url,
                      str(count), str(seconds)]
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Scrapers:
        self._proc = subprocess.Popen(self._args, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()  # SIGTERM: the child prints what it measured, then exits
        out, _ = self._proc.communicate(timeout=60)
        lines = out.strip().splitlines()
        self.latencies = json.loads(lines[-1]) if lines else []


def scrape_child(url: str, count: int, seconds: float) -> None:
    """The child of :class:`Scrapers`: prints the latencies as one JSON line when done or told
    to stop (SIGTERM)."""
    import signal

    latencies: list[float] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def loop() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    session.get(url, headers={"Accept-Encoding": "gzip"}, timeout=30)
                except requests.RequestException:
                    continue
                latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(35)
    print(json.dumps(latencies), flush=True)


class RegistrationFlood:
    """A thread registering and removing one target per request through
    ``POST``/``DELETE /api/v1/targets`` back to back; ``requests`` counts the answered calls."""

    def __init__(self, url: str, token: str, seconds: float, prefix: str = "flood") -> None:
        self._url = url + "/api/v1/targets"
        self._headers = {"Authorization": f"Bearer {token}"}
        self._deadline = time.monotonic() + seconds
        self._prefix = prefix
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.requests = 0
        self.errors = 0

    def __enter__(self) -> RegistrationFlood:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        with requests.Session() as session:
            i = 0
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                task = f"{self._prefix}-{i}"
                i += 1
                try:
                    added = session.post(self._url, json={"targets": [{"task_id": task}]},
                                         headers=self._headers, timeout=10)
                    target_id = added.json()["data"]["ids"][0] if added.ok else None
                    self.requests += 1
                    if target_id is not None and i % 2 == 0:  # half stay, half are removed
                        session.delete(f"{self._url}/{target_id}", headers=self._headers,
                                       timeout=10)
                        self.requests += 1
                    self.errors += 0 if added.ok else 1
                except (requests.RequestException, ValueError, KeyError, IndexError):
                    self.errors += 1


class Probe:
    """One scraper of ``url`` every ``interval`` seconds in a thread: the scrape latency a
    Prometheus server would see while the load runs; ``latencies`` in seconds."""

    def __init__(self, url: str, interval: float = 0.25) -> None:
        self._url = url
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.latencies: list[float] = []

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(35)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.wait(self._interval):
                started = time.perf_counter()
                try:
                    session.get(self._url, headers={"Accept-Encoding": "gzip"}, timeout=30)
                except requests.RequestException:
                    continue
                self.latencies.append(time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


Load = Callable[[float], AbstractContextManager[Any]]
"""Starts one load condition bounded to the given seconds (a context manager)."""


def no_load(seconds: float) -> AbstractContextManager[Any]:
    """The normal condition: nothing besides polling and the probe scraper."""
    return nullcontext()


@contextmanager
def combined(*loads: Load, seconds: float) -> Iterator[Any]:
    """Several loads at once; yields the first (whose latencies, if any, are reported)."""
    with ExitStack() as stack:
        running = [stack.enter_context(load(seconds)) for load in loads]
        yield running[0]


def measure_phase(sim: Any, metrics_url: str, load: Load, fault: dict[str, Any] | None,
                  settle: float, seconds: float) -> dict[str, Any]:
    """Switch the simulator to ``fault`` (None: none), start ``load``, let the exporter settle,
    then count ``seconds``; returns the interval (epoch s), the simulator's stats of it and the
    scrape latencies (the load's own scrapers when it has them, else a probe's)."""
    sim.control("POST", "faults", {"faults": [fault] if fault else [], "clear": True})
    with load(settle + seconds + 5) as running, Probe(metrics_url) as probe:
        time.sleep(settle)
        start = time.time()
        sim.control("POST", "reset_stats")
        time.sleep(seconds)
        stats = sim.control("GET", "stats")
        end = time.time()
    latencies = getattr(running, "latencies", None) or probe.latencies
    return {"start": start, "end": end, "seconds": end - start, "stats": stats,
            "scrapes": len(latencies), "scrape_p99_seconds": percentile(latencies, 99),
            "scrape_median_seconds": percentile(latencies, 50)}


def summarise(phase: dict[str, Any], times: list[float], limit: int) -> dict[str, Any]:
    """Capture peak and count of one phase's interval beside the simulator's, and the share of
    the budget used (requests / (seconds x limit))."""
    inside = [t for t in times if phase["start"] <= t <= phase["end"]]
    stats = phase["stats"]
    return {"capture_max_in_window": max_in_window(inside), "capture_requests": len(inside),
            "simulator_max_in_window": stats["max_in_window"],
            "simulator_requests": stats["requests_total"],
            "simulator_throttled": stats["throttled_total"],
            "budget_used": len(inside) / (phase["seconds"] * limit),
            "scrapes": phase["scrapes"], "scrape_p99_seconds": phase["scrape_p99_seconds"],
            "scrape_median_seconds": phase["scrape_median_seconds"]}


if __name__ == "__main__":
    if sys.argv[1:2] == ["scrape"]:
        scrape_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
