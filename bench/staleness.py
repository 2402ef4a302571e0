"""(c) Staleness: how old each target's status gets, compared with the planned interval.

The age of a target just before it is refreshed is the gap between two successive answers for it,
so the exact maximum age of each target is its largest gap between answers. Per size we report the
max and p99 over targets of that per-target maximum, against the planned interval
(``trtc_exporter_poll_interval_effective_seconds``: poll_interval x stretch when the targets need
more than the 19.6 req/s the 20/s limit sustains). Goal: max age <= 1.1 x planned.

- real process, real time (100 targets at 6 s; 1 000 targets at 15 s in the full run, stretched
  to ~51 s): ``/api/v1/targets`` is sampled every 1-2 s; a changed ``last_success`` closes a gap,
  and the sampled ``age_seconds`` are reported too;
- in-process (1 000 targets in --quick, 5 000 always; 5 000 at 15 s need 333 req/s, stretched to
  ~255 s): an ``Exporter`` on an auto-advancing ``FakeClock`` whose HTTP goes straight into the
  simulator's request handler; the benchmark drives ``Poller.take_due``/``poll_one`` in one
  thread, so answers take no time and only the scheduler, the planner and the budget are measured.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common import (
    ACTION,
    Exporter,
    Simulator,
    Workdir,
    exporter_config,
    finish_run,
    in_process_exporter,
    latency_fault,
    log,
    percentile,
    plotter,
    run_standalone,
    scenario,
)

GOAL = 1.1


def _summary(gaps: dict[str, list[float]], planned: float, mode: str, n: int,
             extra: dict[str, Any]) -> dict[str, Any]:
    worst = [max(g) for g in gaps.values() if g]
    all_gaps = [x for g in gaps.values() for x in g]
    return {
        "targets": n, "mode": mode, "planned_seconds": planned,
        "targets_with_gap": len(worst), "gaps": len(all_gaps),
        "max_age": max(worst, default=float("nan")),
        "p99_age": percentile(worst, 99), "p50_age": percentile(worst, 50),
        "max_ratio": max(worst, default=float("nan")) / planned,
        "p99_ratio": percentile(worst, 99) / planned,
        "per_target_max_age": sorted(worst), **extra,
    }


def real_process(n: int, poll_interval: str, cycles: float, sample_every: float
                 ) -> dict[str, Any]:
    """Exporter and simulator processes; gaps from successive ``last_success`` values."""
    work = Workdir(f"staleness-{n}").path
    sim = Simulator(work, scenario(n, faults=[latency_fault(0.02)]))
    exporter = None
    last: dict[str, float] = {}
    gaps: dict[str, list[float]] = {}
    ages: list[float] = []
    try:
        exporter = Exporter(work, exporter_config(n, sim.url, poll_interval=poll_interval),
                            wait_ready=600)
        planned = exporter.value("trtc_exporter_poll_interval_effective_seconds",
                                 action=ACTION) or float("nan")
        deadline = time.monotonic() + cycles * planned
        while time.monotonic() < deadline:
            for row in exporter.target_rows():
                key, success = row["task_id"], row["last_success"]
                if row["age_seconds"] is not None:
                    ages.append(row["age_seconds"])
                if success is None:
                    continue
                if key in last and success > last[key]:
                    gaps.setdefault(key, []).append(success - last[key])
                last[key] = success
            time.sleep(sample_every)
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    return _summary(gaps, planned, "process", n, {
        "poll_interval": poll_interval, "sample_every_seconds": sample_every,
        "sampled_age_max": max(ages, default=float("nan")),
        "sampled_age_p99": percentile(ages, 99)})


def in_process(n: int, cycles: float, poll_interval: float = 15.0) -> dict[str, Any]:
    """FakeClock exporter driven by hand; gaps from each poll's answer time."""
    app, clock, _ = in_process_exporter(n, poll_interval=poll_interval)
    poller, store = app.poller, app.store
    poller.mark_started()
    gaps: dict[str, list[float]] = {}
    started = time.perf_counter()
    planned = None
    end = None
    polls = 0
    while end is None or clock.monotonic() < end:
        due = poller.take_due()
        if planned is None:
            planned = app.registry.get_sample_value(
                "trtc_exporter_poll_interval_effective_seconds", {"action": ACTION})
            end = clock.monotonic() + (cycles + 1) * planned  # the first cycle only fills
        if not due:
            clock.advance(max(1e-3, poller.seconds_to_next_due()))
            continue
        for key, _ in due:
            before = store.get(key)
            poller.poll_one(key)
            polls += 1
            after = store.get(key)
            if before and after and before.last_answer and after.last_answer > before.last_answer:
                gaps.setdefault(key[2], []).append(after.last_answer - before.last_answer)
    return _summary(gaps, planned or float("nan"), "in-process FakeClock", n, {
        "poll_interval": f"{poll_interval:g}s", "polls": polls,
        "fake_seconds": (cycles + 1) * (planned or 0),
        "real_seconds": time.perf_counter() - started})


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    results = []
    log("(c) staleness: 100 targets, real process, poll_interval 6s")
    results.append(real_process(100, "6s", 2.0 if quick else 4.0, 1.0))
    if quick:
        log("(c) staleness: 1000 targets, in-process FakeClock, poll_interval 15s")
        results.append(in_process(1000, 2.0))
    else:
        log("(c) staleness: 1000 targets, real process, poll_interval 15s (about 2 minutes)")
        results.append(real_process(1000, "15s", 1.2, 2.0))
    log("(c) staleness: 5000 targets, in-process FakeClock, poll_interval 15s")
    results.append(in_process(5000, 1.0 if quick else 2.0))
    for r in results:
        log(f"    {r['targets']} targets ({r['mode']}): planned {r['planned_seconds']:.1f}s, "
            f"max age {r['max_age']:.2f}s ({r['max_ratio']:.3f}x), p99 {r['p99_age']:.2f}s")
    data = {"name": "staleness", "quick": quick, "runs": results}
    return finish_run(out, data, results, plot, summary_rows)


def summary_rows(runs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in runs:
        mode = "process" if r["mode"] == "process" else "FakeClock"
        if not r["targets_with_gap"]:
            rows.append(("(c) staleness", f"max age, {r['targets']} targets ({mode})",
                         f"<= {GOAL:g} x planned", "no target answered twice", "MISS"))
            continue
        ok = r["max_ratio"] <= GOAL
        rows.append((
            "(c) staleness", f"max age, {r['targets']} targets ({mode})",
            f"<= {GOAL:g} x planned",
            f"{r['max_age']:.1f} s = {r['max_ratio']:.3f}x of {r['planned_seconds']:.1f} s "
            f"(p99 {r['p99_ratio']:.3f}x)", "PASS" if ok else "MISS"))
    return rows


@plotter("staleness", figsize=(7, 4))
def plot(runs: list[dict[str, Any]], ax: Any) -> None:
    for r in runs:
        ratios = [a / r["planned_seconds"] for a in r["per_target_max_age"]]
        if not ratios:
            continue
        ax.plot(ratios, [(i + 1) / len(ratios) for i in range(len(ratios))],
                label=f"{r['targets']} targets ({r['mode']}), planned "
                      f"{r['planned_seconds']:.0f} s")
    ax.axvline(GOAL, color="red", ls="--", lw=1, label=f"goal {GOAL:g} x planned")
    ax.set_xlabel("per-target max age / planned interval")
    ax.set_ylabel("fraction of targets")
    ax.set_title("(c) staleness: CDF of each target's worst age")
    ax.legend(loc="lower right", fontsize=8)


if __name__ == "__main__":
    run_standalone(__doc__, run)
