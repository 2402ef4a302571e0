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

Second server mode, ``plain`` (issue 15 item 12): RequestLimitExceeded states no numbers
(``limit_message: plain``) and refused requests count against the window too
(``count_throttled: true``), so the exporter learns nothing from the message and every request
sent over the limit keeps the window full. Goals there, printed against the measurement:

- throttled answers in the first 10 s after the drop: <= 10 %;
- from 10 s after the drop to the limit's return: 7 to 10.5 req/s sent, <= 2 % throttled;
- back to >= 18 req/s (3 s mean) within 40 s after the limit returns.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from common import (
    LIMIT,
    Exporter,
    Replicas,
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
PLAIN = {"limit_message": "plain", "count_throttled": True}
GOAL_FIRST10_THROTTLED = 0.10
GOAL_SETTLED = (7.0, 10.5)
GOAL_SETTLED_THROTTLED = 0.02
GOAL_BACK_RATE, GOAL_BACK_SECONDS = 18.0, 40.0


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


def measure(warmup: float, drop: float, recovery: float, plain: bool = False,
            replicas: int = 0) -> dict[str, Any]:
    """One drop; ``replicas`` > 0 runs that many coordinated exporters (one Redis) instead of
    one embedded exporter, the effective rate read from the first (it is the shared rate)."""
    work = Workdir(("aimd-plain" if plain else "aimd") + (f"-{replicas}" if replicas else "")).path
    sim = Simulator(work, scenario(TARGETS, faults=[latency_fault(0.02)]))
    exporter: Exporter | Replicas | None = None
    samples: list[dict[str, Any]] = []
    try:
        if plain:
            sim.control("POST", "throttling", PLAIN)
        config = exporter_config(TARGETS, sim.url, poll_interval="5s")
        exporter = Replicas(work, config, replicas) if replicas else Exporter(work, config)
        first = exporter.exporters[0] if isinstance(exporter, Replicas) else exporter
        _run_until(time.time() + warmup, sim, first, samples)
        before = time.time()
        sim.control("POST", "rate_limit", {"limit": DROPPED, "duration": drop})
        t_drop = (before + time.time()) / 2
        t_up = t_drop + drop
        _run_until(t_up + recovery, sim, first, samples)
        stats = sim.stats()
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    result = analyse(per_second(stats), samples, t_drop, t_up, stats)
    return {**result, **analyse_goals(per_second(stats), samples, t_drop, t_up)}


def _throttled_between(samples: list[dict[str, Any]], start: float, end: float
                       ) -> tuple[int, int]:
    """(throttled, all) answers between the samples nearest to start and end."""
    first = min(samples, key=lambda s: abs(s["t"] - start))
    last = min(samples, key=lambda s: abs(s["t"] - end))
    return last["throttled"] - first["throttled"], last["answers"] - first["answers"]


def analyse_goals(counts: dict[int, int], samples: list[dict[str, Any]], t_drop: float,
                  t_up: float) -> dict[str, Any]:
    """The four numbers of issue 15 item 12 (see the module docstring)."""
    throttled, answered = _throttled_between(samples, t_drop, t_drop + 10)
    settled_throttled, settled_answered = _throttled_between(samples, t_drop + 10, t_up)
    settled = [counts.get(s, 0) for s in range(math.ceil(t_drop + 10), math.floor(t_up))]
    back = None
    for s in range(math.ceil(t_up), max(counts, default=0) - 2):
        if sum(counts.get(s + i, 0) for i in range(3)) / 3 >= GOAL_BACK_RATE:
            back = s - t_up
            break
    return {
        "first10_throttled_fraction": throttled / answered if answered else 0.0,
        "settled_rate": sum(settled) / len(settled) if settled else None,
        "settled_throttled_fraction": (settled_throttled / settled_answered
                                       if settled_answered else 0.0),
        "back_to_18_seconds": back,
    }


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
    if quick:  # 90 s of its own: the full run has it, and tests/integration/test_aimd_plain.py
        log("(b') plain-message limit drop: left out of --quick (90 s); python bench/aimd.py")
        data = {"name": "aimd", "quick": quick, **result}
        return finish_run(out, data, result, plot, summary_rows, recovery)
    # the plain server needs 10 s after the drop plus a settled stretch, and 40 s after it
    log("(b') same with a plain message and refused requests counted: 10s warm-up, "
        "30s drop, 50s after")
    plain = measure(10.0, 30.0, 50.0, plain=True)
    log("    " + ", ".join(f"{k} {v}" for k, v in goal_values(plain)))
    data = {"name": "aimd", "quick": quick, **result, "plain": plain}
    return finish_run(out, data, {**result, "plain": plain}, plot, summary_rows, recovery)


def goal_values(r: dict[str, Any]) -> list[tuple[str, str]]:
    settled, back = r["settled_rate"], r["back_to_18_seconds"]
    return [("first 10 s throttled", f"{r['first10_throttled_fraction']:.1%}"),
            ("settled", "n/a" if settled is None else f"{settled:.1f} req/s"),
            ("settled throttled", f"{r['settled_throttled_fraction']:.1%}"),
            ("back to 18/s", "not yet" if back is None else f"{back:.0f} s")]


def plain_rows(r: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """The four goals of issue 15 item 12 against the plain-message server."""
    settled, back = r["settled_rate"], r["back_to_18_seconds"]
    first, calm = r["first10_throttled_fraction"], r["settled_throttled_fraction"]
    low, high = GOAL_SETTLED
    return [
        ("(b') plain limit drop", "throttled, first 10 s", f"<= {GOAL_FIRST10_THROTTLED:.0%}",
         f"{first:.1%}", "PASS" if first <= GOAL_FIRST10_THROTTLED else "MISS"),
        ("(b') plain limit drop", "settled rate", f"{low:g}-{high:g} req/s",
         "n/a" if settled is None else f"{settled:.1f} req/s",
         "PASS" if settled is not None and low <= settled <= high else "MISS"),
        ("(b') plain limit drop", "throttled, settled", f"<= {GOAL_SETTLED_THROTTLED:.0%}",
         f"{calm:.1%}", "PASS" if calm <= GOAL_SETTLED_THROTTLED else "MISS"),
        ("(b') plain limit drop", f"back to >= {GOAL_BACK_RATE:g}/s",
         f"<= {GOAL_BACK_SECONDS:g} s", "not yet" if back is None else f"{back:.0f} s",
         "PASS" if back is not None and back <= GOAL_BACK_SECONDS else "MISS"),
    ]


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
        *(plain_rows(r["plain"]) if "plain" in r else []),
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
