"""(h) Webhooks: API requests TRTC's event callbacks save, and how much sooner stops are seen.

A realistic mix on a FakeClock, in-process and deterministic (seeded): tasks start at random
through the run, spend 10 s in Idle/Preparing, transcribe for 20-90 minutes and stop; after a stop
the exporter keeps polling the ended task (Stopped every 10 intervals) until its retention (1 h)
ends. 80 % of the tasks talk (a sentence every 4-12 s), 15 % pause (talk, then silent stretches
of 2-6 minutes), 5 % are silent throughout. Both modes watch the same tasks from their start
(without callbacks they come from the registration API); the budget is never the bottleneck.

- **polling only**: the state-aware cadence (InProgress every ``poll_interval``, Idle 2x,
  Stopped 10x);
- **with callbacks**: the same poller, fed by :class:`trtc_exporter.polling.events.TaskEvents`
  with the start, sentence and stop effects the receiver produces (each start and stop triggers
  a confirming poll; a task whose callbacks keep confirming it InProgress is polled
  ``EVENT_CONFIRMED_FACTOR`` times less often).

Reported: API requests, requests per task-hour, their ratio, and the delay from a task's stop
to the exporter showing it (mean and max).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import run_standalone

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import Config
from trtc_exporter.polling.events import TaskEvents
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.target import Target
from trtc_exporter.webhook.effects import Sentence, TaskStarted, TaskStopped

ACTION = "DescribeAITranscription"
AI = "ai_transcription"
APP = 1400000001
START = 1_795_514_400.0
STEP = 0.5  # seconds per simulation step


@dataclass
class Task:
    """One simulated task's truth: when it starts transcribing, stops, and talks."""

    task_id: str
    created: float
    running: float  # InProgress from here
    stopped: float  # Stopped from here
    kind: str  # talks, pauses, silent
    every: float  # seconds between sentences while talking
    pauses: list[tuple[float, float]] = field(default_factory=list)
    next_sentence: float = 0.0

    def status(self, now: float) -> str | None:
        if now < self.created:
            return None
        if now < self.running:
            return "Idle" if now < self.created + 5 else "Preparing"
        return "InProgress" if now < self.stopped else "Stopped"

    def talking(self, now: float) -> bool:
        if self.kind == "silent":
            return False
        return not any(a <= now < b for a, b in self.pauses)


def mix(n: int, hours: float, seed: int) -> list[Task]:
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        created = START + rng.uniform(0, hours * 3600 * 0.6)
        running = created + 10.0
        stopped = running + rng.uniform(20, 90) * 60
        kind = rng.choices(["talks", "pauses", "silent"], [80, 15, 5])[0]
        pauses = []
        if kind == "pauses":
            at = running + rng.uniform(60, 600)
            while at < stopped:
                length = rng.uniform(120, 360)
                pauses.append((at, at + length))
                at += length + rng.uniform(300, 900)
        tasks.append(Task(f"bench-{i:04d}", created, running, stopped, kind,
                          rng.uniform(4, 12), pauses, running))
    return tasks


def simulate(tasks: list[Task], hours: float, callbacks: bool,
             poll_interval: float = 15.0) -> dict[str, Any]:
    """Run the mix for ``hours``; API requests and stop-detection delays."""
    clock = FakeClock(START)
    by_id = {t.task_id: t for t in tasks}
    requests = 0

    def poll(target: Target, cancel: threading.Event) -> Outcome:
        nonlocal requests
        requests += 1
        status = by_id[target.task_id].status(clock.time())
        if status is None:
            return Outcome(ApiFailure("FailedOperation.TaskNotExist", "gone", "r"), 1, 0.0)
        return Outcome(TaskStatus(status, status, 0.0, target.task_id, "", "r"), 1, 0.0)

    config = Config(poll_interval=poll_interval)
    store = StateStore()
    poller = Poller(config, poll, store, Budget({ACTION: 1000.0}, clock), clock)
    watched: dict[tuple[str, ...], Target] = {}

    def register(target: Target, ttl: float) -> bool:
        watched.setdefault(target.key, target)
        poller.set_targets(list(watched.values()))
        return True

    events = TaskEvents(poller, register, lambda: config)
    poller.mark_started()
    started: set[str] = set()
    stopped: set[str] = set()
    seen_stopped: dict[str, float] = {}
    end = START + hours * 3600
    while clock.time() < end:
        now = clock.time()
        for task in tasks:
            _step(task, now, callbacks, events, register, started, stopped)
        for key, _ in poller.take_due():
            poller.poll_one(key)
        for state in store.snapshot():
            tid = state.target.task_id
            if tid not in seen_stopped and state.status == "Stopped" and tid in stopped:
                seen_stopped[tid] = now - by_id[tid].stopped
        clock.advance(STEP)
    delays = sorted(seen_stopped.values())
    task_hours = sum(min(t.stopped + 3600, end) - t.created for t in tasks
                     if t.created < end) / 3600
    return {"requests": requests, "task_hours": task_hours,
            "per_task_hour": requests / task_hours,
            "stops_seen": len(delays), "stops": len(stopped),
            "stop_delay_mean": sum(delays) / len(delays) if delays else float("nan"),
            "stop_delay_max": max(delays, default=float("nan"))}


def _step(task: Task, now: float, callbacks: bool, events: TaskEvents, register: Any,
          started: set[str], stopped: set[str]) -> None:
    if task.task_id not in started and now >= task.created:
        started.add(task.task_id)
        target = Target(api=AI, region="ap-guangzhou", task_id=task.task_id, sdk_app_id=APP,
                        source="webhook" if callbacks else "api")
        if callbacks:  # TRTC's 901 comes when the task starts
            events.apply(TaskStarted(APP, task.task_id, AI, now, "room", 0))
        else:  # the application registers it through the registration API
            register(target, 86_400.0)
    if task.task_id not in stopped and now >= task.stopped:
        stopped.add(task.task_id)
        if callbacks:
            events.apply(TaskStopped(APP, task.task_id, AI, now))
    status = task.status(now)
    if callbacks and status == "InProgress" and now >= task.next_sentence:
        if task.talking(now):
            events.apply(Sentence(APP, task.task_id, AI, now))
        task.next_sentence = now + task.every


def run(quick: bool, out: Path) -> dict[str, Any]:
    """Both modes on the same mix; rows for the summary table."""
    n, hours = (60, 1.5) if quick else (200, 3.0)
    results = {}
    for mode, callbacks in (("polling only", False), ("with callbacks", True)):
        results[mode] = simulate(mix(n, hours, seed=17), hours, callbacks)
    base = results["polling only"]["requests"]
    rows = [["mode", "API requests", "per task-hour", "vs polling", "stop seen after (mean)",
             "(max)"]]
    for mode, r in results.items():
        rows.append([mode, f"{r['requests']}", f"{r['per_task_hour']:.1f}",
                     f"{r['requests'] / base:.2f}", f"{r['stop_delay_mean']:.1f} s",
                     f"{r['stop_delay_max']:.1f} s"])
    saved = 1 - results["with callbacks"]["requests"] / base
    rows.append([f"{n} tasks over {hours:g} h, poll_interval 15s", f"saved {saved:.0%}",
                 "", "", "", ""])
    return {"rows": rows, "results": results}


if __name__ == "__main__":
    run_standalone(__doc__, run)
