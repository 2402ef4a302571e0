"""A 24-hour soak of the poller on a fake clock: churning targets, faults, no growth, no drift.

The poller is driven by hand (``take_due``/``poll_one``), as in polling/test_poller.py, against a
fake API that answers every kind of outcome. Every five simulated minutes the target set changes
like a reload (a steady core stays, a window of short-lived targets slides on); every ten minutes
the internal structures and the rendered /metrics output are measured.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import Config, ScheduleConfig
from trtc_exporter.exposition.apps import AppCollector
from trtc_exporter.exposition.health import BudgetPollerCollector
from trtc_exporter.exposition.selfhealth import SelfHealthCollector
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.runtime import Runtime
from trtc_exporter.target import Target

AI, CLOUD = "DescribeAITranscription", "DescribeCloudTranscription"
DAY = 24 * 3600.0
INTERVAL = 15.0
RELOAD_EVERY = 300.0
SAMPLE_EVERY = 600.0
WINDOW = 15  # churning targets in the config at any time; 5 new ones per reload
APPS = (1400000001, 1400000002, 1400000003)
FAULT_CODES = ("InternalError", "Timeout", "ConnectionError", "HTTP5xx", "InvalidResponse",
               "RequestLimitExceeded", "AuthFailure.SignatureFailure", "Other")
CONFIG = Config(poll_interval=INTERVAL,
                schedule=ScheduleConfig(stopped_retention=300.0, not_found_backoff_max=600.0))


def steady_targets() -> list[Target]:
    ai = [Target(api="ai_transcription", region="ap-guangzhou", task_id=f"steady-{i}",
                 sdk_app_id=APPS[i % 3]) for i in range(4)]
    cloud = [Target(api="cloud_transcription", region="ap-singapore", task_id="cloud-0",
                    sdk_app_id=APPS[0])]
    session = [Target(api="ai_transcription", region="ap-tokyo", sdk_app_id=APPS[1],
                      session_id="room-steady")]
    return ai + cloud + session


def churn_target(n: int) -> Target:
    if n % 7 == 0:
        return Target(api="ai_transcription", region="ap-guangzhou", sdk_app_id=APPS[n % 3],
                      session_id=f"room-{n}")
    if n % 5 == 0:
        return Target(api="cloud_transcription", region="ap-guangzhou", task_id=f"churn-{n}",
                      sdk_app_id=APPS[n % 3])
    return Target(api="ai_transcription", region="ap-guangzhou", task_id=f"churn-{n}",
                  sdk_app_id=APPS[n % 3] if n % 2 else None)


APP_KEYS = {(t.api, t.region, str(t.sdk_app_id or "")) for t in steady_targets()
            + [churn_target(n) for n in range(int(DAY / RELOAD_EVERY) * 5 + WINDOW)]}
"""Every (api, region, app) any configured target ever had: the bound of the usage table."""


@dataclass
class SoakApi:
    """Deterministic answers per target kind: runs then stops, gone, never there, or failing."""

    clock: FakeClock
    rng: random.Random = field(default_factory=lambda: random.Random(20261124))
    born: dict[str, float] = field(default_factory=dict)
    polls: dict[tuple[str, ...], list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def __call__(self, target: Target, cancel: threading.Event) -> Outcome:
        now = self.clock.monotonic()
        self.polls[target.key].append(now)
        name = target.task_id or target.session_id
        age = now - self.born.setdefault(name, now)
        if name.startswith(("steady", "cloud", "room-steady")):
            kind = "steady"
        else:
            kind = ("runs-then-stops", "ends-and-goes", "never-exists", "keeps-failing",
                    "flaps")[int(name.rsplit("-", 1)[1]) % 5]
        return self._answer(kind, age, target)

    def _answer(self, kind: str, age: float, target: Target) -> Outcome:
        fail_rate = {"steady": 0.03, "keeps-failing": 0.9, "flaps": 0.3}.get(kind, 0.05)
        if self.rng.random() < fail_rate:
            code = self.rng.choice(FAULT_CODES)
            self.codes[code] += 1
            return Outcome(ApiFailure(code, "injected", "req-x"), 1, 0.1)
        stopped = "Stopped" if target.api == "ai_transcription" else "Exited"
        if kind == "never-exists" or (kind == "ends-and-goes" and age > 400):
            return Outcome(ApiFailure("FailedOperation.TaskNotExist", "gone", "req-nf"), 1, 0.1)
        status = stopped if kind == "runs-then-stops" and age > 300 else "InProgress"
        if kind == "flaps" and self.rng.random() < 0.2:
            status = "Suspended-by-fuzz" if self.rng.random() < 0.5 else "Idle"
        known = status if status in ("InProgress", "Idle", stopped) else "Unknown"
        return Outcome(TaskStatus(known, status, 1_795_500_000.0, target.task_id or "t",
                                  target.session_id, "req-ok"), 1, 0.1)


@dataclass
class Sample:
    """Sizes of every internal structure and of the rendered output at one instant."""

    at: float
    configured: int
    targets: int
    heap: int
    scheduled: int
    store: int
    usage: int
    retired: int
    lanes: int
    pending: int
    series: int


@dataclass
class Soak:
    poller: Poller
    store: StateStore
    api: SoakApi
    clock: FakeClock
    registry: CollectorRegistry
    samples: list[Sample] = field(default_factory=list)
    reloads: int = 0
    configured: int = 0


def build() -> Soak:
    clock = FakeClock(1_795_514_400.0)
    budget = Budget({AI: 20.0, CLOUD: 20.0}, clock)
    api, store = SoakApi(clock), StateStore()
    poller = Poller(CONFIG, api, store, budget, clock)
    runtime = Runtime(CONFIG, reload_success_time=clock.time())
    registry = CollectorRegistry(auto_describe=True)
    for collector in (TaskCollector(store.snapshot, clock.time),
                      AppCollector(store, lambda: runtime.config, clock.time),
                      BudgetPollerCollector(budget, poller, SkewEstimator(),
                                            lambda: runtime.config),
                      SelfHealthCollector(runtime)):
        registry.register(collector)
    return Soak(poller, store, api, clock, registry)


def reload(soak: Soak) -> None:
    """The next config: the steady core plus the sliding window of churning targets."""
    first = soak.reloads * 5
    targets = steady_targets() + [churn_target(n) for n in range(first, first + WINDOW)]
    soak.poller.set_targets(targets, CONFIG)
    soak.configured = len(targets)
    soak.reloads += 1


def sample(soak: Soak) -> None:
    p = soak.poller
    series = sum(1 for line in generate_latest(soak.registry).decode().splitlines()
                 if line and not line.startswith("#"))
    soak.samples.append(Sample(
        at=soak.clock.monotonic(), configured=soak.configured, targets=len(p.targets()),
        heap=len(p._schedule._heap), scheduled=len(p._schedule), store=len(soak.store),
        usage=len(soak.store.usage()), retired=len(p._retired), lanes=len(p._lanes),
        pending=len(p._cycle_pending), series=series))


def drive(soak: Soak, seconds: float) -> None:
    """Run the poller by hand for ``seconds`` of fake time: polls, reloads, samples."""
    clock = soak.clock
    start = clock.monotonic()
    # samples fall between reloads, when retired targets are still in the config
    next_reload, next_sample = start, start + SAMPLE_EVERY + RELOAD_EVERY / 2
    end = start + seconds
    while clock.monotonic() < end:
        for key, _ in soak.poller.take_due():
            soak.poller.poll_one(key)
        now = clock.monotonic()
        if now >= next_reload:
            reload(soak)
            next_reload += RELOAD_EVERY
        if now >= next_sample:
            sample(soak)
            next_sample += SAMPLE_EVERY
        step = min(soak.poller.seconds_to_next_due(), next_reload - now, next_sample - now)
        clock.advance(max(step, 1e-6))


@pytest.fixture(scope="module")
def soak() -> Soak:
    """One 24-hour run shared by the assertions below."""
    run = build()
    run.poller.mark_started()
    drive(run, DAY)
    return run


def test_the_run_covers_a_day_of_churn_and_faults(soak: Soak) -> None:
    """The soak really ran 24 h with ~288 reloads, thousands of targets and every fault code."""
    assert soak.reloads == DAY / RELOAD_EVERY
    assert len(soak.api.polls) > 1400
    assert set(soak.api.codes) == set(FAULT_CODES)
    assert soak.poller.stats.retired > 100
    assert len(soak.samples) == DAY / SAMPLE_EVERY - 1


def test_internal_structures_stay_bounded(soak: Soak) -> None:
    """Heap, store, usage, retired set, lanes and the cycle set stay within the config's size."""
    for s in soak.samples:
        assert s.targets <= s.configured and s.store == s.targets, s
        assert s.scheduled <= s.targets and s.pending <= s.targets, s
        assert s.heap <= s.configured + WINDOW, s  # entries of dropped targets age out
        assert s.retired <= s.configured, s
        assert s.usage <= len(APP_KEYS), s  # one accumulator per (api, region, app), not target
        assert s.lanes <= 2, s


def test_rendered_series_do_not_grow(soak: Soak) -> None:
    """The /metrics output stays proportional to the targets, and is no larger late than early."""
    for s in soak.samples:
        assert s.series <= 16 * s.configured + 120, s
    early = max(s.series for s in soak.samples[6:36])  # hours 1 to 6
    late = max(s.series for s in soak.samples[-30:])  # the last 5 hours
    assert late <= early * 1.05, (early, late)  # the state mix varies a little; no trend


def test_steady_targets_keep_their_cadence_all_day(soak: Soak) -> None:
    """Each steady target is polled every 15 s (±0.1 s) for 24 h; its phase does not drift."""
    for target in steady_targets():
        times = soak.api.polls[target.key]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= INTERVAL - 0.1 and max(gaps) <= INTERVAL + 0.1, (
            target.describe(), min(gaps), max(gaps))
        drift = times[-1] - (times[0] + (len(times) - 1) * INTERVAL)
        assert abs(drift) < 1.0, (target.describe(), drift)
        assert len(times) >= DAY / INTERVAL - 2


def test_an_exception_from_a_poll_does_not_orphan_its_target() -> None:
    """A poll function that raises (a bug, an odd library error) leaves the target scheduled and
    polled again, instead of killing the worker thread and dropping the target for good."""
    clock = FakeClock(1_795_514_400.0)
    calls: list[float] = []

    def flaky(target: Target, cancel: threading.Event) -> Outcome:
        calls.append(clock.monotonic())
        if len(calls) == 1:
            raise UnicodeEncodeError("latin-1", "\u2603", 0, 1, "ordinal not in range(256)")
        return Outcome(TaskStatus("InProgress", "InProgress", None, "t1", "", "r"), 1, 0.1)

    target = Target(api="ai_transcription", region="ap-guangzhou", task_id="t1")
    poller = Poller(CONFIG, flaky, StateStore(), Budget({AI: 20.0}, clock), clock)
    poller.set_targets([target])
    poller.mark_started()
    clock.advance(INTERVAL)
    assert [k for k, _ in poller.take_due()] == [target.key]
    try:
        poller.poll_one(target.key)  # in the real poller, a worker thread runs this
    except Exception as exc:
        pytest.fail(f"poll_one let {type(exc).__name__} escape: the worker thread would die")
    assert poller.due_time(target.key) is not None, "the target is no longer scheduled"
    clock.advance(2 * INTERVAL)
    for key, _ in poller.take_due():
        poller.poll_one(key)
    assert len(calls) == 2
