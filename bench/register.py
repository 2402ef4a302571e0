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

Target-file edits (in-process ``Exporter`` on a fake clock, one JSON target file of 10 000
entries): 1 % and 10 % of the entries changed (half replaced by new tasks, half relabelled),
each applied by the whole-set path (``sources.merged()`` and ``Poller.set_targets``, as before)
and piecewise (``TargetSet.update_files`` and the poller's add/remove/change API), side by side.
Reading and parsing the edited file is the same for both and left out of both times.

Medians of a few repetitions; no goal is set, the numbers are reported.
"""

from __future__ import annotations

import json
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


def _edited(entries: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """``share`` of the entries changed: the first half replaced, the second half relabelled."""
    count = int(len(entries) * share)
    out = [dict(e) for e in entries]
    for i in range(count):
        out[i] = ({"task_id": f"edit-{i}"} if i < count // 2 else
                  {**out[i], "labels": {"team": "edited"}})
    return out


def file_edits(repeat: int) -> dict[str, Any]:
    """Whole-set vs piecewise apply of a 1 % and a 10 % target-file edit at N targets."""
    from trtc_exporter.api.credentials import Credentials, StaticProvider
    from trtc_exporter.app import Exporter as App
    from trtc_exporter.clock import FakeClock
    from trtc_exporter.config.model import parse_config
    from trtc_exporter.secret import Secret

    work = Path(tempfile.mkdtemp(prefix="trtc-bench-files-"))
    path = work / "targets.json"
    base = exporter_config(N, "http://127.0.0.1:9")["targets"]
    path.write_text(json.dumps(base))
    config = parse_config({"api": {"endpoint": "http://127.0.0.1:9"}, "max_targets": 2 * N,
                           "target_files": [str(path)]})
    creds = StaticProvider(Credentials(Secret("AKID" + "x" * 16), Secret("k" * 24)), "env")
    app = App(config, creds, clock=FakeClock())
    sources = app.sources

    def whole() -> None:
        app._apply_targets(announce=False)

    def piecewise() -> None:
        app._apply_change(sources.target_set.update_files(sources.files.by_file()))

    result: dict[str, Any] = {"targets": N}
    for share in (0.01, 0.1):
        texts = [json.dumps(_edited(base, share)), json.dumps(base)]
        for name, apply in (("whole", whole), ("piecewise", piecewise)):
            times = []
            for i in range(2 * repeat):  # there and back: each apply is a real change
                path.write_text(texts[i % 2])
                sources.files.refresh(force=True)  # read and parse: not timed
                started = time.perf_counter()
                apply()
                times.append(time.perf_counter() - started)
            result[f"{name}_{share:.2f}_seconds"] = statistics.median(times)
        result[f"ratio_{share:.2f}"] = (result[f"piecewise_{share:.2f}_seconds"] /
                                        result[f"whole_{share:.2f}_seconds"])
    assert len(app.poller.targets()) == N
    sources.close()
    return result


def _edit_cell(f: dict[str, Any], share: str) -> str:
    """``whole vs piecewise ms (ratio)`` of one edit size."""
    whole, piecewise = f[f"whole_{share}_seconds"], f[f"piecewise_{share}_seconds"]
    return f"{whole * 1000:.1f} vs {piecewise * 1000:.2f} ms ({f[f'ratio_{share}']:.3f}x)"


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
    log(f"(f) target-file edits at {N} targets: whole-set vs piecewise apply")
    r["file_edits"] = f = file_edits(3 if quick else 7)
    for share in ("0.01", "0.10"):
        log(f"    {float(share):.0%} changed: {_edit_cell(f, share)}")
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
        *(("(f) register", f"target-file edit, {float(share):.0%} of 10 000: whole-set vs "
           "piecewise apply", "report", _edit_cell(f, share), "INFO")
          for share in ("0.01", "0.10")),
    ]
    return data


if __name__ == "__main__":
    run_standalone(__doc__, run)
