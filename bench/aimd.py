"""(b) Adapting to a lower limit: the simulator's limit drops from 20 to 10 req/s and comes back.

The real exporter polls a simulator with more demand than budget (150 targets at 5 s = 30 req/s,
20 ms latency). After a warm-up, ``POST /_sim/rate_limit {"limit": 10, "duration": D}`` lowers
the limit for D seconds. Measured from the simulator's per-second arrival counts and answer codes,
and the exporter's ``trtc_exporter_budget_rate{kind="effective"}``:

- convergence: from the drop until the end of the last whole second with more than 10 arrivals;
- throttled fraction: RequestLimitExceeded answers / all answers while the limit is 10;
- recovery: from the limit's return until the first 3 s whose mean rate is >= 19 req/s (97 % of
  the 19.6 req/s the limiter sustains at 20/s), and until the effective-rate gauge is back at 20.

Goals: convergence within 10 s with < 2 % throttled answers. Recovery is additive (1 req/s per s)
once the learned ceiling is forgotten 30 s after the last throttle (``budget.AimdPolicy``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from common import (
    LIMIT,
    Exporter,
    Simulator,
    Workdir,
    answers,
    code_count,
    exporter_config,
    finish_run,
    latency_fault,
    log,
    per_second,
    plotter,
    run_standalone,
    scenario,
)

TARGETS = 150
DROPPED = 10
GOAL_CONVERGENCE = 10.0
GOAL_THROTTLED = 0.02
RECOVERED_RATE = 19.0
SAMPLE = 0.5


def _sample(sim: Simulator, exporter: Exporter) -> dict[str, Any]:
    stats = sim.stats()
    return {"t": time.time(),
            "effective": exporter.value("trtc_exporter_budget_rate", kind="effective"),
            "throttled": code_count(stats, "RequestLimitExceeded"), "answers": answers(stats)}


def _run_until(deadline: float, sim: Simulator, exporter: Exporter,
               samples: list[dict[str, Any]]) -> None:
    while time.time() < deadline:
        samples.append(_sample(sim, exporter))
        time.sleep(max(0.0, min(SAMPLE, deadline - time.time())))


def measure(warmup: float, drop: float, recovery: float) -> dict[str, Any]:
    work = Workdir("aimd").path
    sim = Simulator(work, scenario(TARGETS, faults=[latency_fault(0.02)]))
    exporter = None
    samples: list[dict[str, Any]] = []
    try:
        exporter = Exporter(work, exporter_config(TARGETS, sim.url, poll_interval="5s"))
        _run_until(time.time() + warmup, sim, exporter, samples)
        before = time.time()
        sim.control("POST", "rate_limit", {"limit": DROPPED, "duration": drop})
        t_drop = (before + time.time()) / 2
        t_up = t_drop + drop
        _run_until(t_up + recovery, sim, exporter, samples)
        stats = sim.stats()
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    return analyse(per_second(stats), samples, t_drop, t_up, stats)


def analyse(counts: dict[int, int], samples: list[dict[str, Any]], t_drop: float, t_up: float,
            stats: dict[str, Any]) -> dict[str, Any]:
    during = range(math.ceil(t_drop), math.floor(t_up))
    over = [s for s in during if counts.get(s, 0) > DROPPED]
    convergence = (over[-1] + 1 if over else math.ceil(t_drop)) - t_drop
    settled = [counts.get(s, 0) for s in during if not over or s > over[-1]]
    first = max((s for s in samples if s["t"] <= t_drop), key=lambda s: s["t"])
    last = min((s for s in samples if s["t"] >= t_up), key=lambda s: s["t"])
    throttled = last["throttled"] - first["throttled"]
    answered = last["answers"] - first["answers"]
    end = max(counts, default=0)
    recovered = None
    for s in range(math.ceil(t_up), end - 2):
        if sum(counts.get(s + i, 0) for i in range(3)) / 3 >= RECOVERED_RATE:
            recovered = s - t_up
            break
    gauge_back = next((s["t"] - t_up for s in samples
                       if s["t"] >= t_up and (s["effective"] or 0) >= LIMIT), None)
    return {
        "targets": TARGETS, "limit": LIMIT, "dropped_to": DROPPED,
        "drop_seconds": t_up - t_drop, "convergence_seconds": convergence,
        "seconds_over_limit_during_drop": len(over),
        "settled_rate_during_drop": sum(settled) / len(settled) if settled else None,
        "throttled_during_drop": throttled, "answers_during_drop": answered,
        "throttled_fraction": throttled / answered if answered else 0.0,
        "throttled_total": code_count(stats, "RequestLimitExceeded"),
        "recovery_seconds": recovered, "gauge_back_at_limit_seconds": gauge_back,
        "per_second": {str(s - math.floor(t_drop)): n for s, n in sorted(counts.items())},
        "effective_rate": [(round(s["t"] - t_drop, 2), s["effective"]) for s in samples],
    }


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    warmup, drop, recovery = (6.0, 12.0, 35.0) if quick else (10.0, 30.0, 60.0)
    log(f"(b) limit 20 -> {DROPPED} for {drop:g}s and back: {warmup:g}s warm-up, "
        f"{recovery:g}s after")
    result = measure(warmup, drop, recovery)
    rec = result["recovery_seconds"]
    log(f"    converged in {result['convergence_seconds']:.1f}s, throttled "
        f"{result['throttled_during_drop']}/{result['answers_during_drop']} "
        f"({result['throttled_fraction']:.1%}), recovered "
        + (f"{rec:.0f}s after the limit came back" if rec is not None else "not yet"))
    data = {"name": "aimd", "quick": quick, **result}
    return finish_run(out, data, result, plot, summary_rows, recovery)


def summary_rows(r: dict[str, Any], window: float) -> list[tuple[str, str, str, str, str]]:
    conv, frac, rec = r["convergence_seconds"], r["throttled_fraction"], r["recovery_seconds"]
    gauge = r["gauge_back_at_limit_seconds"]
    return [
        ("(b) limit drop", "convergence to <= 10/s", f"<= {GOAL_CONVERGENCE:g} s",
         f"{conv:.1f} s", "PASS" if conv <= GOAL_CONVERGENCE else "MISS"),
        ("(b) limit drop", "throttled answers during drop", f"< {GOAL_THROTTLED:.0%}",
         f"{frac:.1%} ({r['throttled_during_drop']}/{r['answers_during_drop']})",
         "PASS" if frac < GOAL_THROTTLED else "MISS"),
        ("(b) limit drop", "recovery to >= 19/s after", "report",
         (f"{rec:.0f} s" if rec is not None else f"> {window:g} s")
         + (f" (gauge 20 at {gauge:.0f} s)" if gauge is not None else ""), "INFO"),
    ]


@plotter("aimd", figsize=(9, 4))
def plot(r: dict[str, Any], ax: Any) -> None:
    xs = [int(k) for k in r["per_second"]]
    ax.bar(xs, list(r["per_second"].values()), width=0.9, align="edge", alpha=0.5,
           label="arrivals per second (simulator)")
    eff = [(t, v) for t, v in r["effective_rate"] if v is not None]
    ax.plot([t for t, _ in eff], [v for _, v in eff], color="C1",
            label="exporter effective rate (gauge)")
    drop = r["drop_seconds"]
    ax.step([min(xs, default=0), 0, drop, max(xs, default=drop)],
            [LIMIT, DROPPED, LIMIT, LIMIT], where="post", color="red", ls="--", lw=1,
            label="simulator limit")
    ax.set_xlabel("seconds since the limit dropped")
    ax.set_ylabel("requests/s")
    ax.set_ylim(0, LIMIT * 1.5)
    ax.set_title(f"(b) limit {LIMIT} -> {DROPPED} -> {LIMIT}: converged in "
                 f"{r['convergence_seconds']:.1f} s, {r['throttled_fraction']:.1%} throttled")
    ax.legend(loc="upper right", fontsize=8)


if __name__ == "__main__":
    run_standalone(__doc__, run)
