"""(f) Time to register 10 000 targets: the registration API, and the config path for comparison.

Registration API (``POST /api/v1/targets`` of the real exporter process, bearer token, SQLite
registry in a temporary folder; it polls a simulator that answers TaskNotExist):

- one POST carrying 10 000 targets (``{"targets": [...]}``);
- single-target POSTs while few targets are registered, and again with 10 000 registered: each
  registration re-plans and re-sets the whole target set, so its cost grows with the set; from
  the two medians, registering 10 000 targets one POST at a time is estimated (linear in N, so
  the total is quadratic).

Config path (in-process): ``load_config`` of a 10 000-target YAML file (YAML decoding with the
strict loader, then ``parse_config``), ``parse_config`` alone, and ``Poller.set_targets`` with
10 000 new targets, the same 10 000 again (a reload that changes nothing) and 100 replaced.

Medians of a few repetitions; no goal is set, the numbers are reported.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from common import (
    Exporter,
    Simulator,
    Workdir,
    exporter_config,
    log,
    run_standalone,
    save_json,
    scenario,
)

N = 10_000


def _median(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None
            ) -> float:
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


TOKEN = "bench-registration-token"  # noqa: S105 - a throwaway token for a loopback process


def _post(url: str, targets: list[dict[str, Any]]) -> float:
    """One registration on a new connection (a POST is never retried on a stale keep-alive)."""
    started = time.perf_counter()
    resp = requests.post(url + "/api/v1/targets", json={"targets": targets}, timeout=600,
                         headers={"Authorization": f"Bearer {TOKEN}"})
    elapsed = time.perf_counter() - started
    resp.raise_for_status()
    return elapsed


def api(singles: int) -> dict[str, Any]:
    """The registration API of the exporter process."""
    work = Workdir("register").path
    (work / "token").write_text(TOKEN + "\n")
    n_all = N + 2 * singles
    sim = Simulator(work, scenario(0))  # the API answers TaskNotExist; only registration counts
    config = exporter_config(0, sim.url)
    config.update(max_targets=2 * N, registration={
        "enabled": True, "db_path": str(work / "registry.db"),
        "bearer_token_file": str(work / "token")})
    exporter = None
    try:
        exporter = Exporter(work, config)
        ids = iter(range(n_all))
        small = [_post(exporter.url, [{"task_id": f"bench-task-{next(ids):05d}"}])
                 for _ in range(singles)]
        bulk = _post(exporter.url,
                     [{"task_id": f"bench-task-{next(ids):05d}"} for _ in range(N)])
        large = [_post(exporter.url, [{"task_id": f"bench-task-{next(ids):05d}"}])
                 for _ in range(singles)]
        registered = len(exporter.target_rows())
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    few, many = statistics.median(small), statistics.median(large)
    return {"bulk_post_seconds": bulk, "single_post_few_seconds": few,
            "single_post_10k_seconds": many, "single_posts": singles,
            "one_at_a_time_estimate_seconds": N * (few + many) / 2,
            "registered_at_end": registered}


def measure(repeat: int) -> dict[str, Any]:
    from trtc_exporter.api.budget import Budget
    from trtc_exporter.clock import FakeClock
    from trtc_exporter.config.model import load_config, parse_config
    from trtc_exporter.polling.poller import Poller
    from trtc_exporter.polling.state import StateStore

    doc = exporter_config(N, "http://127.0.0.1:9")
    text = yaml.safe_dump(doc)
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        handle.write(text)
    path = handle.name
    try:
        load = _median(lambda: load_config(path), repeat)
    finally:
        Path(path).unlink()
    parse = _median(lambda: parse_config(doc), repeat)
    config = parse_config(doc)
    changed_doc = {**doc, "targets": doc["targets"][100:] + [{"task_id": f"new-{i}"}
                                                             for i in range(100)]}
    changed = parse_config(changed_doc).targets
    clock = FakeClock()
    state: dict[str, Any] = {}

    def fresh() -> None:
        state["poller"] = Poller(config, lambda target, cancel: None,  # type: ignore[arg-type,return-value]
                                 StateStore(), Budget({"DescribeAITranscription": 20.0}, clock),
                                 clock)

    def loaded() -> None:
        fresh()
        state["poller"].set_targets(config.targets)

    new = _median(lambda: state["poller"].set_targets(config.targets), repeat, fresh)
    same = _median(lambda: state["poller"].set_targets(config.targets), repeat, loaded)
    diff = _median(lambda: state["poller"].set_targets(changed), repeat, loaded)
    return {"targets": N, "repeat": repeat, "yaml_bytes": len(text),
            "load_config_seconds": load, "parse_config_seconds": parse,
            "set_targets_new_seconds": new, "set_targets_unchanged_seconds": same,
            "set_targets_1pct_changed_seconds": diff}


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    repeat, singles = (1, 5) if quick else (5, 30)
    log(f"(f) registering {N} targets: POST /api/v1/targets (bulk, and {singles} single POSTs "
        f"with few and with {N} registered)")
    r = api(singles)
    log(f"    bulk {r['bulk_post_seconds']:.2f}s; single POST {r['single_post_few_seconds']:.3f}s "
        f"-> {r['single_post_10k_seconds']:.3f}s; one at a time ~"
        f"{r['one_at_a_time_estimate_seconds']:.0f}s")
    log(f"(f) config path: load_config and Poller.set_targets with {N} targets")
    r.update(measure(repeat))
    log(f"    load_config {r['load_config_seconds']:.2f}s (parse_config "
        f"{r['parse_config_seconds']:.2f}s), set_targets new {r['set_targets_new_seconds']:.2f}s,"
        f" unchanged {r['set_targets_unchanged_seconds']:.2f}s, 1% changed "
        f"{r['set_targets_1pct_changed_seconds']:.2f}s")
    data = {"name": "register", "quick": quick, **r}
    save_json(out, "register", data)
    data["rows"] = [
        ("(f) register", "POST /api/v1/targets, 10 000 in one body", "report",
         f"{r['bulk_post_seconds']:.2f} s", "INFO"),
        ("(f) register", "single-target POST: few / 10 000 registered", "report",
         f"{r['single_post_few_seconds'] * 1000:.0f} ms / "
         f"{r['single_post_10k_seconds'] * 1000:.0f} ms", "INFO"),
        ("(f) register", "10 000 single POSTs (estimate)", "report",
         f"~{r['one_at_a_time_estimate_seconds']:.0f} s", "INFO"),
        ("(f) register", "load_config, 10 000-target YAML", "report",
         f"{r['load_config_seconds']:.2f} s (parse_config {r['parse_config_seconds']:.2f} s)",
         "INFO"),
        ("(f) register", "Poller.set_targets: 10 000 new / unchanged / 1 % changed", "report",
         f"{r['set_targets_new_seconds']:.3f} / {r['set_targets_unchanged_seconds']:.3f} / "
         f"{r['set_targets_1pct_changed_seconds']:.3f} s", "INFO"),
    ]
    return data


if __name__ == "__main__":
    run_standalone(__doc__, run)
