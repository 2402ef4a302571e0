"""(i) HA: the shared budget with 1, 2 and 3 replicas, takeover after ``kill -9``, and the
unstated-limit AIMD across three replicas.

Real processes on 127.0.0.1: a redis-server of its own, the simulator (limit 20 req/s, strict
per SecretId and action, arrivals stamped by the kernel; 150 targets InProgress, 20 ms latency)
and N exporters with ``coordination:`` (heartbeat 1 s: a member is gone 3 s after its last
heartbeat, the takeover bound is 2 x 3 s). 150 targets at ``poll_interval: 5s`` ask 30 req/s,
more than the budget, so the replicas together should use it all.

For N = 1, 2, 3: after the targets are divided and a warm-up (8 s, ``--quick`` 4 s: one
stretched cycle puts every replica at its share), a measurement of ``seconds`` (30 s,
``--quick`` 6 s) counts the requests and the most of them in any sliding
1 s window, twice: from the packet capture (``tests/integration/capture.py``, tshark on ``lo``,
kernel timestamps; skipped without tshark or capture rights) and from the simulator's
``/_sim/stats`` (``max_in_window``). Then (N >= 2) one replica gets SIGKILL and the takeover time
is how long until the survivors together poll every target again (``trtc_exporter_targets``
summed over them). Goals: peak <= 20, use >= 95 %, no throttling, takeover <= 6 s.

The full run also drops the limit 20 -> 10 for 30 s with a server that states no limit and
counts refused requests (``limit_message: plain``, ``count_throttled: true``; ``bench/aimd.py``'s
(b'), here with three coordinated replicas). Goals as (b'): <= 10 % throttled in the 10 s after
the drop, 7-10.5 req/s settled with <= 2 % throttled, back to >= 18 req/s within 40 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aimd
from common import (
    LIMIT,
    Replicas,
    Simulator,
    Workdir,
    exporter_config,
    finish_run,
    latency_fault,
    log,
    plotter,
    run_standalone,
    scenario,
    wait_for,
)
from tests.integration.capture import CaptureError, PostCapture, max_in_window, tshark_available

TARGETS = 150
HEARTBEAT = 1.0
TAKEOVER_BOUND = 2 * 3 * HEARTBEAT
GOAL_USE = 0.95
COUNTS = (1, 2, 3)


def _polled(replicas: list[Any]) -> float:
    return sum(r.total("trtc_exporter_targets") for r in replicas)


def _count(sim: Simulator, seconds: float) -> tuple[dict[str, Any], int | None]:
    """Simulator stats over ``seconds`` and the capture's peak (None without a capture)."""
    if not tshark_available():
        sim.control("POST", "reset_stats")
        time.sleep(seconds)
        return sim.stats(), None
    try:
        with PostCapture(sim.port) as capture:
            sim.control("POST", "reset_stats")
            time.sleep(seconds)
            stats = sim.stats()
    except CaptureError as exc:
        log(f"    no packet capture ({exc}); simulator counts only")
        sim.control("POST", "reset_stats")
        time.sleep(seconds)
        return sim.stats(), None
    return stats, max_in_window(capture.times)


def _takeover(group: Replicas) -> float | None:
    """SIGKILL the last replica; seconds until the survivors poll every target (None: not
    within the bound + 5 s)."""
    total = _polled(group.exporters)
    victim = group.exporters[-1]
    victim.proc.kill()
    victim.proc.wait()
    killed = time.monotonic()
    while time.monotonic() - killed < TAKEOVER_BOUND + 5:
        if _polled(group.live()) >= total:
            return time.monotonic() - killed
        time.sleep(0.1)
    return None


def measure(count: int, seconds: float, warmup: float) -> dict[str, Any]:
    work = Workdir(f"ha-{count}").path
    sim = Simulator(work, scenario(TARGETS, faults=[latency_fault(0.02)]))
    group = None
    try:
        group = Replicas(work, exporter_config(TARGETS, sim.url, poll_interval="5s"), count,
                         HEARTBEAT)
        members = group.exporters
        wait_for(lambda: sum(e.total("trtc_exporter_targets_owned") for e in members)
                 == TARGETS and _polled(members) == TARGETS, 30, "the targets to be divided")
        time.sleep(warmup)  # every replica at its share of the budget
        stats, peak = _count(sim, seconds)
        owned = [e.total("trtc_exporter_targets_owned") for e in members]
        takeover = _takeover(group) if count >= 2 else None
    finally:
        if group is not None:
            group.stop()
        sim.stop()
    return {"replicas": count, "seconds": seconds, "requests": stats["requests_total"],
            "use": stats["requests_total"] / (LIMIT * seconds),
            "peak_capture": peak, "peak_simulator": stats["max_in_window"],
            "throttled": stats["throttled_total"], "owned": owned,
            "takeover_seconds": takeover}


def run(quick: bool = False, out: Path | None = None) -> dict[str, Any]:
    seconds, warmup = (6.0, 4.0) if quick else (30.0, 8.0)
    runs = []
    for count in COUNTS:
        log(f"(i) {count} replica(s), {TARGETS} targets at 5 s, {seconds:g} s measured"
            + (", then kill -9 of one" if count >= 2 else ""))
        result = measure(count, seconds, warmup)
        log("    " + ", ".join(f"{k} {v}" for k, v in result.items()))
        runs.append(result)
    plain = None
    if not quick:
        log("(i') 3 replicas, plain message + refused requests counted: limit 20 -> 10 for "
            "30 s, 10 s warm-up, 50 s after")
        plain = aimd.measure(10.0, 30.0, 50.0, plain=True, replicas=3)
        log("    " + ", ".join(f"{k} {v}" for k, v in aimd.goal_values(plain)))
    data = {"name": "ha", "quick": quick, "runs": runs, "plain": plain}
    print(side_by_side(runs))
    return finish_run(out, data, data, plot, summary_rows)


def _cell(value: Any, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def side_by_side(runs: list[dict[str, Any]]) -> str:
    """The replicas as columns, the measures as rows (Markdown)."""
    rows = [
        ("requests in the measurement", lambda r: f"{r['requests']} in {r['seconds']:g} s"),
        ("use of the 20 req/s limit", lambda r: f"{r['use']:.1%}"),
        ("peak in any 1 s, capture", lambda r: _cell(r["peak_capture"], "d")),
        ("peak in any 1 s, simulator", lambda r: str(r["peak_simulator"])),
        ("throttled answers", lambda r: str(r["throttled"])),
        ("targets owned", lambda r: " / ".join(f"{v:g}" for v in r["owned"])),
        ("takeover after kill -9", lambda r: _cell(r["takeover_seconds"], ".1f")
         + (" s" if r["takeover_seconds"] is not None else "")),
    ]
    head = "| measure | " + " | ".join(f"{r['replicas']} replica(s)" for r in runs) + " |"
    lines = [head, "|---" * (len(runs) + 1) + "|"]
    lines += ["| " + " | ".join([name, *(cell(r) for r in runs)]) + " |" for name, cell in rows]
    return "\n".join(lines)


def summary_rows(data: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for r in data["runs"]:
        name = f"(i) HA, {r['replicas']} replica(s)"
        peak = max(p for p in (r["peak_capture"], r["peak_simulator"]) if p is not None)
        rows += [
            (name, "use of the shared limit", f">= {GOAL_USE:.0%}", f"{r['use']:.1%}",
             "PASS" if r["use"] >= GOAL_USE else "MISS"),
            (name, "peak in any 1 s (capture, simulator)", f"<= {LIMIT}",
             f"{_cell(r['peak_capture'], 'd')}, {r['peak_simulator']}; "
             f"{r['throttled']} throttled",
             "PASS" if peak <= LIMIT and r["throttled"] == 0 else "MISS"),
        ]
        if r["replicas"] >= 2:
            took = r["takeover_seconds"]
            rows.append((name, "takeover after kill -9", f"<= {TAKEOVER_BOUND:g} s",
                         _cell(took, ".1f") + " s",
                         "PASS" if took is not None and took <= TAKEOVER_BOUND else "MISS"))
    if data["plain"] is not None:
        rows += [("(i') plain limit drop, 3 replicas", *rest)
                 for _, *rest in aimd.plain_rows(data["plain"])]
    return rows


@plotter("ha", figsize=(6, 3.5))
def plot(data: dict[str, Any], ax: Any) -> None:
    runs = data["runs"]
    xs = [r["replicas"] for r in runs]
    ax.bar([x - 0.2 for x in xs], [r["requests"] / r["seconds"] for r in runs], width=0.4,
           label="mean req/s")
    ax.bar([x + 0.2 for x in xs], [max(p for p in (r["peak_capture"], r["peak_simulator"])
                                      if p is not None) for r in runs], width=0.4,
           label="peak in any 1 s")
    ax.axhline(LIMIT, color="red", ls="--", lw=1, label="limit")
    ax.set_xticks(xs)
    ax.set_xlabel("replicas")
    ax.set_ylabel("requests/s")
    ax.set_title("(i) one shared budget across replicas")
    ax.legend(loc="lower right", fontsize=8)


if __name__ == "__main__":
    run_standalone(__doc__, run)
