"""The poller on a fake clock: phase spread, state cadence, stretch, fairness, retention, reload."""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from dataclasses import replace

import pytest

from trtc_exporter.api.budget import Budget, RateLimiter
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import Config, ScheduleConfig
from trtc_exporter.polling import poller as poller_module
from trtc_exporter.polling.planning import state_interval
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore, TargetState
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.target import Target

AI = "DescribeAITranscription"
CLOUD = "DescribeCloudTranscription"


def task(i: int, api: str = "ai_transcription") -> Target:
    if api == "cloud_transcription":
        return Target(api=api, region="ap-guangzhou", task_id=f"c{i}", sdk_app_id=1)
    return Target(api=api, region="ap-guangzhou", task_id=f"t{i}")


class FakeApi:
    """Answers polls from a status table; counts polls per target with their fake times."""

    def __init__(self, clock: FakeClock, default: str = "InProgress") -> None:
        self.clock = clock
        self.status: dict[str, str | None] = {}
        self.default = default
        self.polls: dict[str, list[float]] = defaultdict(list)

    def __call__(self, target: Target, cancel: threading.Event) -> Outcome:
        self.polls[target.task_id].append(self.clock.monotonic())
        status = self.status.get(target.task_id, self.default)
        if status is None:
            return Outcome(ApiFailure("FailedOperation.TaskNotExist", "gone", "r"), 1, 0.01)
        if status == "error":
            return Outcome(ApiFailure("InternalError", "x", "r"), 1, 0.01)
        return Outcome(TaskStatus(status, status, 1.0, target.task_id, "", "r"), 1, 0.01)


def make(targets: list[Target], config: Config | None = None, rate: float = 20.0,
         default: str = "InProgress") -> tuple[Poller, FakeApi, FakeClock, StateStore]:
    clock = FakeClock(1000.0)
    config = config or Config(poll_interval=10.0)
    budget = Budget({AI: rate, CLOUD: rate}, clock)
    api = FakeApi(clock, default)
    store = StateStore()
    poller = Poller(config, api, store, budget, clock)
    poller.set_targets(targets)
    poller.mark_started()
    return poller, api, clock, store


def run(poller: Poller, clock: FakeClock, seconds: float, per_second: float = 1000.0,
        step: float = 0.01, lag: float = 0.0) -> None:
    """Advance time in steps, polling due targets up to `per_second` polls/s (the budget),
    each poll finishing `lag` seconds after it was handed out (latency plus queueing)."""
    allowance = 0.0
    backlog: list[tuple[float, tuple[str, ...]]] = []
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        now = clock.monotonic()
        backlog.extend((now + lag, key) for key, _ in poller.take_due())
        allowance = min(allowance + per_second * step, per_second * step + 1.0)
        while backlog and backlog[0][0] <= now and allowance >= 1.0:
            allowance -= 1.0
            poller.poll_one(backlog.pop(0)[1])
        clock.advance(step)


def test_first_polls_are_spread_evenly_over_the_interval() -> None:
    """Ten targets at 10 s start about one second apart, not all at once."""
    poller, api, clock, _ = make([task(i) for i in range(10)])
    run(poller, clock, 10.0)
    firsts = sorted(times[0] - 1000.0 for times in api.polls.values())
    assert len(firsts) == 10
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert all(0.9 <= gap <= 1.1 for gap in gaps), gaps


def test_each_state_has_its_cadence() -> None:
    """InProgress every interval, Idle every 2x, Stopped every 10x (defaults)."""
    poller, api, clock, _ = make([task(0), task(1), task(2)])
    api.status.update({"t0": "InProgress", "t1": "Idle", "t2": "Stopped"})
    run(poller, clock, 300.0)
    def mean_gap(times: list[float]) -> float:
        return (times[-1] - times[1]) / (len(times) - 2)
    assert mean_gap(api.polls["t0"]) == pytest.approx(10.0, abs=0.1)
    assert mean_gap(api.polls["t1"]) == pytest.approx(20.0, abs=0.1)
    assert mean_gap(api.polls["t2"]) == pytest.approx(100.0, abs=0.1)


def session(name: str) -> Target:
    return Target(api="ai_transcription", region="ap-guangzhou", sdk_app_id=1400000001,
                  session_id=name)


def test_stopped_session_keeps_the_base_cadence_while_a_stopped_task_slows_down() -> None:
    """A Stopped session is polled every interval (it can restart), a Stopped task every 10x."""
    poller, api, clock, _ = make([task(0), session("room")])
    api.status.update({"t0": "Stopped", "": "Stopped"})  # FakeApi keys a session by task_id ""
    run(poller, clock, 300.0)
    def mean_gap(times: list[float]) -> float:
        return (times[-1] - times[1]) / (len(times) - 2)
    assert mean_gap(api.polls["t0"]) == pytest.approx(100.0, abs=0.1)
    assert mean_gap(api.polls[""]) == pytest.approx(10.0, abs=0.1)


def test_stopped_session_factor_is_configurable() -> None:
    """schedule.stopped_session_factor sets the cadence of ended sessions alone."""
    config = Config(poll_interval=10.0, schedule=ScheduleConfig(stopped_session_factor=3.0))
    poller, api, clock, _ = make([session("room")], config)
    api.status[""] = "Stopped"
    run(poller, clock, 300.0)
    times = api.polls[""]
    assert (times[-1] - times[1]) / (len(times) - 2) == pytest.approx(30.0, abs=0.1)


def test_demand_above_budget_stretches_every_interval_equally() -> None:
    """450 targets at 15 s need 30 req/s; with 20 req/s the interval stretches to about 23 s."""
    targets = [task(i) for i in range(450)]
    poller, api, clock, _ = make(targets, Config(poll_interval=15.0))
    assert poller.demand[AI] == pytest.approx(30.0)
    stretch = poller.stretch[AI]
    assert stretch == pytest.approx(30.0 / 19.6, rel=0.01)
    run(poller, clock, 120.0, per_second=19.6, step=0.05)
    gaps = [b - a for times in api.polls.values() for a, b in itertools.pairwise(times)]
    planned = 15.0 * stretch
    assert max(gaps) <= 1.1 * planned  # nobody starves
    assert sum(gaps) / len(gaps) == pytest.approx(planned, rel=0.05)


def test_latency_does_not_slow_the_cycle() -> None:
    """Polls finishing 0.5 s late keep their phase: the mean gap stays the interval, not +0.5 s."""
    poller, api, clock, _ = make([task(i) for i in range(20)])
    run(poller, clock, 200.0, lag=0.5)
    gaps = [b - a for times in api.polls.values() for a, b in itertools.pairwise(times)]
    assert sum(gaps) / len(gaps) == pytest.approx(10.0, abs=0.05)


def test_no_target_is_queued_twice() -> None:
    """A target whose poll is slow is not handed out again until that poll finishes."""
    poller, _, clock, _ = make([task(0)], Config(poll_interval=1.0))
    clock.advance(5.0)
    first = poller.take_due()
    clock.advance(5.0)
    assert len(first) == 1
    assert poller.take_due() == []  # still in flight: no pile-up


def test_stopped_targets_retire_after_retention() -> None:
    """A Stopped target is polled until stopped_retention passes, then dropped and counted."""
    config = Config(poll_interval=10.0, schedule=ScheduleConfig(stopped_retention=600.0))
    poller, api, clock, store = make([task(0), task(1)], config)
    api.status["t0"] = "Stopped"
    run(poller, clock, 900.0)
    assert [t.task_id for t in poller.targets()] == ["t1"]
    assert store.get(task(0).key) is None
    assert poller.stats.retired == 1
    polls_after_retire = len(api.polls["t0"])
    run(poller, clock, 300.0)
    assert len(api.polls["t0"]) == polls_after_retire


def test_seen_then_not_found_means_ended() -> None:
    """A task seen InProgress that becomes NotFound is treated as ended and retired."""
    config = Config(poll_interval=10.0, schedule=ScheduleConfig(stopped_retention=60.0))
    poller, api, clock, store = make([task(0)], config)
    run(poller, clock, 20.0)
    api.status["t0"] = None
    run(poller, clock, 30.0)
    state = store.get(task(0).key)
    assert state is not None and state.status == "NotFound" and state.ended_at is not None
    run(poller, clock, 120.0)
    assert poller.targets() == []


def test_never_seen_not_found_backs_off_and_stays() -> None:
    """A task never seen by the API is polled with doubling gaps up to the cap, never retired."""
    config = Config(poll_interval=10.0, schedule=ScheduleConfig(not_found_backoff_max=80.0))
    poller, api, clock, _ = make([task(0)], config, default="InProgress")
    api.status["t0"] = None
    run(poller, clock, 1000.0)
    times = api.polls["t0"]
    gaps = [round(b - a) for a, b in itertools.pairwise(times)]
    assert gaps[:4] == [10, 20, 40, 80]
    assert set(gaps[4:]) == {80}
    assert len(poller.targets()) == 1


def test_reload_keeps_survivors_and_drops_removed() -> None:
    """Targets kept across a reload keep state and due time; removed ones lose their series."""
    poller, _, clock, store = make([task(0), task(1)])
    run(poller, clock, 15.0)
    before = store.get(task(0).key)
    due = poller.due_time(task(0).key)
    poller.set_targets([task(0), task(2)])
    assert store.get(task(0).key) == before
    assert poller.due_time(task(0).key) == due
    assert store.get(task(1).key) is None
    assert store.get(task(2).key) is not None


def test_ready_after_every_target_was_polled_once() -> None:
    """Readiness flips when the first full cycle over all targets completes."""
    poller, _, clock, _ = make([task(i) for i in range(5)])
    assert not poller.stats.ready
    run(poller, clock, 11.0)
    assert poller.stats.ready
    assert poller.stats.cycle_duration == pytest.approx(10.0, abs=2.5)


def test_failures_keep_the_last_status_and_touch_no_other_target() -> None:
    """An erroring target keeps its last status with poll_success 0; others are unaffected."""
    poller, api, clock, store = make([task(0), task(1)])
    run(poller, clock, 15.0)
    api.status["t0"] = "error"
    run(poller, clock, 15.0)
    bad, good = store.get(task(0).key), store.get(task(1).key)
    assert bad is not None and good is not None
    assert (bad.status, bad.poll_success, bad.last_error_code) == ("InProgress", False,
                                                                  "InternalError")
    assert (good.status, good.poll_success) == ("InProgress", True)


def test_status_goes_unknown_after_three_intervals_without_answer() -> None:
    """The shown status turns Unknown once the last answer is older than three intervals."""
    poller, api, clock, store = make([task(0)])
    run(poller, clock, 15.0)
    api.status["t0"] = "error"  # last answer at t=10
    run(poller, clock, 20.0)  # t=35: 25 s without an answer
    state = store.get(task(0).key)
    assert state is not None and state.shown_status(clock.time()) == "InProgress"
    run(poller, clock, 10.0)  # t=45: 35 s > 3 intervals
    state = store.get(task(0).key)
    assert state is not None and state.shown_status(clock.time()) == "Unknown"


def test_lanes_are_per_action() -> None:
    """Demand and stretch are planned per action: a 1.0 overload does not stretch 2.0."""
    targets = [task(i) for i in range(400)] + [task(i, "cloud_transcription") for i in range(10)]
    poller, _, _, _ = make(targets, Config(poll_interval=10.0))
    assert poller.stretch[AI] > 1.5
    assert poller.stretch[CLOUD] == 1.0


def test_state_change_time_is_the_transition() -> None:
    """status_change_time moves only when the status changes."""
    poller, api, clock, store = make([task(0)])
    run(poller, clock, 15.0)
    first = store.get(task(0).key)
    assert first is not None and first.status_change_time is not None
    run(poller, clock, 20.0)
    same = store.get(task(0).key)
    assert same is not None and same.status_change_time == first.status_change_time
    api.status["t0"] = "Stopped"
    run(poller, clock, 15.0)
    changed = store.get(task(0).key)
    assert changed is not None and changed.status_change_time != first.status_change_time
    assert replace(changed, status="x").status == "x"


def _max_overdue(poller: Poller, clock: FakeClock, seconds: float) -> float:
    """Run like the dispatcher does, in 1 s slices, and return the largest overdue age seen."""
    worst = 0.0
    for _ in range(int(seconds)):
        run(poller, clock, 1.0)
        worst = max(worst, poller.overdue_seconds())
    return worst


def test_rarely_polled_targets_are_never_overdue() -> None:
    """Only a Stopped target (every 10 intervals) and a never-found one (backing off) at 5 s:
    nothing is ever late, so health judged on overdue work cannot flap between their polls."""
    poller, api, clock, _ = make([task(0), task(1)], Config(poll_interval=5.0))
    api.status.update({"t0": "Stopped", "t1": None})
    assert _max_overdue(poller, clock, 400.0) < 0.05
    assert len(api.polls["t0"]) >= 8 and len(api.polls["t1"]) >= 4  # really polled, rarely


def test_a_dead_dispatcher_makes_polls_overdue() -> None:
    """When nobody hands out due targets, the oldest due time ages with the clock."""
    poller, _, clock, _ = make([task(0)], Config(poll_interval=5.0))
    assert poller.overdue_seconds() == 0.0
    clock.advance(60.0)  # the single target's phase slot is 0: due at the start
    assert poller.overdue_seconds() == pytest.approx(60.0)


def test_a_hung_poll_stays_overdue_until_it_finishes() -> None:
    """A poll handed out but never finished keeps its due time: overdue grows, then clears."""
    poller, _, clock, _ = make([task(0)], Config(poll_interval=5.0))
    clock.advance(5.0)
    (key, _), = poller.take_due()
    clock.advance(100.0)
    assert poller.overdue_seconds() > 95.0
    poller.poll_one(key)
    assert poller.overdue_seconds() == 0.0


def test_a_callback_makes_its_target_due_now_within_the_budget() -> None:
    """observe(confirm=True) moves the next poll to now; it still goes through take_due."""
    poller, api, clock, _ = make([task(0)])
    run(poller, clock, 12.0)
    before = len(api.polls["t0"])
    assert poller.observe(task(0).key, confirm=True)
    assert [key for key, _ in poller.take_due()] == [task(0).key]
    assert len(api.polls["t0"]) == before  # handed out, not polled behind the budget's back


def test_a_running_dispatcher_wakes_for_a_confirming_callback_at_once() -> None:
    """A sleeping dispatcher (next due 10 s away) hands a confirming callback's target out
    without fake time moving: the callback wakes it (it used to sleep on until its next wake,
    up to a second later)."""
    poller, api, clock, _ = make([task(0)])
    run(poller, clock, 12.0)
    before = len(api.polls["t0"])
    poller.start()
    try:
        assert clock.await_sleepers(1)  # the dispatcher waits for its next due time
        assert poller.observe(task(0).key, confirm=True)
        deadline = time.monotonic() + 5.0
        while len(api.polls["t0"]) == before and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(api.polls["t0"]) == before + 1
    finally:
        poller.stop(timeout=0.0)


def test_a_confirming_callback_during_a_poll_gets_its_poll_right_after_it() -> None:
    """A confirming callback arriving while its target's poll is in flight: the poll's end
    wakes the sleeping dispatcher for the confirming poll, which waits only for the budget's
    next slot (not for the dispatcher's next wake, up to a second later)."""
    poller, api, clock, _ = make([task(0)])
    run(poller, clock, 12.0)
    before = len(api.polls["t0"])
    entered, release = threading.Event(), threading.Event()
    real = api.__call__

    def held(target: Target, cancel: threading.Event) -> Outcome:
        entered.set()
        release.wait(5.0)
        return real(target, cancel)

    poller._poll = held
    poller.start()
    try:
        assert clock.await_sleepers(1)
        assert poller.observe(task(0).key, confirm=True)
        assert entered.wait(5.0)
        assert poller.observe(task(0).key, confirm=True)  # its poll is in flight
        release.set()
        deadline = time.monotonic() + 5.0
        while len(api.polls["t0"]) < before + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert clock.await_sleepers(1)
        clock.advance(0.1)  # the budget's next slot (20/s) comes; the next wake was 1 s away
        while len(api.polls["t0"]) < before + 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert len(api.polls["t0"]) == before + 2
    finally:
        release.set()
        poller.stop(timeout=0.0)


def test_a_lane_first_met_after_stop_starts_no_worker() -> None:
    """A dispatch still running when stop comes (here: one after it) meets a lane for the first
    time: its workers never start, so no worker thread outlives stop."""
    poller, _, _, _ = make([task(0)])
    poller.start()
    poller.stop(timeout=1.0)
    poller.add_targets([task(0, "cloud_transcription")])
    poller.dispatch()
    assert CLOUD in poller._lanes
    assert [t.name for lane in poller._lanes.values() for t in lane.threads if t.is_alive()] == []


def test_a_stop_callback_shows_the_end_at_once_with_the_event_time() -> None:
    """observe(ended=...) shows Stopped now with the event's time as the change time."""
    poller, _, clock, store = make([task(0)])
    run(poller, clock, 12.0)
    poller.observe(task(0).key, ended="Stopped", change_time=1234.5)
    state = store.get(task(0).key)
    assert state is not None
    assert (state.shown_status(clock.time()), state.status_change_time) == ("Stopped", 1234.5)


def test_callbacks_arriving_during_a_poll_are_kept() -> None:
    """A sentence counted while a poll was in flight survives that poll's record."""
    poller, api, clock, store = make([task(0)])
    real = api.__call__

    def slow(target: Target, cancel: threading.Event) -> Outcome:
        poller.observe(target.key, sentence_time=clock.time())
        return real(target, cancel)

    poller._poll = slow
    poller.poll_one(task(0).key)
    state = store.get(task(0).key)
    assert state is not None and state.sentences == 1 and state.status == "InProgress"


def test_an_inprogress_task_confirmed_by_callbacks_is_polled_less_often() -> None:
    """Sentences every 5 s stretch an InProgress task's interval to 4x; without them it is 1x."""
    poller, api, clock, _ = make([task(0), task(1)])
    for _ in range(60):
        run(poller, clock, 5.0)
        poller.observe(task(0).key, sentence_time=clock.time())
    assert len(api.polls["t1"]) == pytest.approx(30, abs=1)
    assert len(api.polls["t0"]) == pytest.approx(8, abs=2)


def test_session_targets_are_found_by_the_task_id_their_polls_resolved() -> None:
    """find_task knows a session target by the TaskId the API returned for it."""
    session = Target(api="ai_transcription", region="ap-guangzhou", sdk_app_id=1,
                     session_id="room")
    poller, _, clock, _ = make([session])
    poller._poll = lambda target, cancel: Outcome(
        TaskStatus("InProgress", "InProgress", 1.0, "resolved-7", "", "r"), 1, 0.01)
    assert poller.find_task("ai_transcription", "resolved-7") is None
    run(poller, clock, 12.0)
    assert poller.find_task("ai_transcription", "resolved-7") == session.key


def test_the_task_index_finds_tasks_by_api_without_a_tuple_per_target() -> None:
    """The same TaskId under two APIs names two tasks; the index keys are the targets' own
    TaskId strings (no (api, task id) tuple per target), and a removed target is forgotten."""
    ai, cloud = Target(api="ai_transcription", region="ap-guangzhou", task_id="same-id"), \
        Target(api="cloud_transcription", region="ap-guangzhou", task_id="same-id", sdk_app_id=1)
    poller, *_ = make([ai, cloud])
    assert poller.find_task("ai_transcription", "same-id") == ai.key
    assert poller.find_task("cloud_transcription", "same-id") == cloud.key
    assert next(iter(poller._by_task["ai_transcription"])) is ai.task_id
    poller.remove_targets([ai.key])
    assert poller.find_task("ai_transcription", "same-id") is None
    assert poller.find_task("cloud_transcription", "same-id") == cloud.key


def test_adding_and_removing_targets_plans_like_a_whole_set() -> None:
    """add_targets/remove_targets reach the demand, stretch and schedule that set_targets does."""
    whole, _, _, _ = make([task(i) for i in range(300)], rate=5.0)
    poller, _, _, store = make([task(i) for i in range(200)], rate=5.0)
    poller.add_targets([task(i) for i in range(150, 350)])
    poller.remove_targets([task(i).key for i in range(300, 350)] + [("no", "such")])
    assert sorted(t.key for t in poller.targets()) == sorted(t.key for t in whole.targets())
    assert poller.demand == pytest.approx(whole.demand)
    assert poller.stretch == pytest.approx(whole.stretch)
    assert len(store) == 300
    assert poller.due_time(task(250).key) is not None
    assert poller.due_time(task(320).key) is None


def test_changing_targets_keeps_their_state_and_plans_like_a_whole_set() -> None:
    """change_targets swaps labels and intervals in, keeps polls and due times, and reaches the
    demand and stretch of set_targets with the same versions; unknown keys are ignored."""
    slow = [replace(task(i), poll_interval=40.0, labels=(("team", "x"),)) for i in range(100)]
    whole, _, whole_clock, _ = make([task(i) for i in range(300)], rate=5.0)
    poller, _, clock, store = make([task(i) for i in range(300)], rate=5.0)
    run(whole, whole_clock, 12.0)
    run(poller, clock, 12.0)
    whole.set_targets(slow + [task(i) for i in range(100, 300)])
    before = store.get(task(0).key)
    due = poller.due_time(task(0).key)
    poller.change_targets([*slow, task(999)])
    after = store.get(task(0).key)
    assert before is not None and after is not None
    assert (after.target.labels, after.last_answer) == ((("team", "x"),), before.last_answer)
    assert poller.due_time(task(0).key) == due
    assert task(999).key not in {t.key for t in poller.targets()}
    assert poller.demand == pytest.approx(whole.demand)
    assert poller.stretch == pytest.approx(whole.stretch)


def test_a_target_changed_while_its_poll_is_in_flight_keeps_its_new_version() -> None:
    """A target moved to another account's lane (and relabelled) while its poll is in flight,
    which finds it Idle: the poll's record carries the new version, and the demand follows the
    new interval in the new lane only."""
    poller, api, clock, store = make([task(0), task(1)])
    poller._budget = Budget({AI: 20.0, CLOUD: 20.0, f"acme/{AI}": 20.0}, clock)
    run(poller, clock, 12.0)
    moved = replace(task(0), account="acme", labels=(("team", "x"),))
    api.status["t0"] = "Idle"
    real = api.__call__

    def changed_meanwhile(target: Target, cancel: threading.Event) -> Outcome:
        if target.key == moved.key:
            poller.change_targets([moved])
        return real(target, cancel)

    poller._poll = changed_meanwhile
    poller.poll_one(task(0).key)
    state = store.get(task(0).key)
    assert state is not None and state.target == moved
    assert poller.demand == pytest.approx({AI: 0.1, f"acme/{AI}": 0.05})


def _counted_afresh(poller: Poller, store: StateStore, config: Config) -> dict[str, float]:
    """Each lane's requests/s counted from scratch from the targets' records now (no callbacks
    in these scenarios, so no interval depends on the time)."""
    demand: dict[str, float] = {}
    for target in poller.targets():
        state = store.get(target.key) or TargetState(target)
        interval = state_interval(target, state.status, state.seen, state.not_found_streak,
                                  config)
        demand[target.lane] = demand.get(target.lane, 0.0) + 1.0 / interval
    return demand


def test_the_demand_follows_every_poll_and_change_as_a_fresh_count_would() -> None:
    """Statuses change (cadences 1x, 2x, 10x), NotFound backs off poll by poll, tasks retire,
    targets come, go and change: after each step the demand kept change by change equals a
    count from scratch, per lane, with no whole-set pass once a second."""
    config = Config(poll_interval=10.0, schedule=ScheduleConfig(stopped_retention=60.0,
                                                                not_found_backoff_max=80.0))
    targets = [task(i) for i in range(40)] + [task(i, "cloud_transcription") for i in range(20)]
    poller, api, clock, store = make(targets, config, rate=3.0)
    statuses = ["InProgress", "Idle", "Stopped", None, "error"]
    for i in range(40):
        api.status[f"t{i}"] = statuses[i % 5]
    for step in range(6):
        run(poller, clock, 30.0)
        assert poller.demand == pytest.approx(_counted_afresh(poller, store, config)), step
        for i in range(step, 40, 6):
            api.status[f"t{i}"] = statuses[(i + step) % 5]
        poller.add_targets([task(100 + step)])
        poller.remove_targets([task(30 + step).key])
        poller.change_targets([replace(task(20 + step), poll_interval=5.0)])
    assert poller.stats.retired > 0
    assert poller.demand == pytest.approx(_counted_afresh(poller, store, config))


def test_a_callback_moves_the_demand_at_once() -> None:
    """A sentence callback on an InProgress task relaxes its interval to 4x: the demand drops
    by its share right away, not at its next poll; a removed lane's demand is exactly 0."""
    poller, _, clock, _ = make([task(0), task(1)])
    run(poller, clock, 12.0)
    assert poller.demand[AI] == pytest.approx(0.2)
    poller.observe(task(0).key, sentence_time=clock.time())
    assert poller.demand[AI] == pytest.approx(0.1 + 0.1 / 4)
    poller.remove_targets([task(0).key, task(1).key])
    assert poller.demand[AI] == 0.0


def test_the_once_a_second_replan_does_not_visit_every_target(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Between polls, a dispatcher's once-a-second replan recomputes only each lane's stretch:
    no target's interval is computed (at 10 000 targets a whole pass cost 6 ms a second)."""
    poller, _, clock, _ = make([task(i) for i in range(50)], Config(poll_interval=600.0))
    counted: list[Target] = []
    real = poller_module.state_interval
    monkeypatch.setattr(poller_module, "state_interval",
                        lambda target, *rest: counted.append(target) or real(target, *rest))
    for _ in range(5):
        clock.advance(1.0)
        poller.take_due()
    assert counted == []
    poller.add_targets([task(99)])
    assert {t.key for t in counted} == {task(99).key}  # its own interval only


def _handed(poller: Poller, action: str = AI) -> list[tuple[tuple[str, ...], object]]:
    """The jobs the dispatcher queued for a lane's workers (the poller is not started: no
    worker threads run here)."""
    lane = poller._lanes.get(action)
    return [] if lane is None else lane.take_queued()


def two_targets_half_a_second_apart(confirm_sends: bool = False
                                    ) -> tuple[Poller, FakeClock, Budget]:
    """Two targets 0.5 s apart in a 1 s interval on a 20 req/s budget, the clock at the first
    one's due time."""
    clock = FakeClock(1000.0)
    budget = Budget({AI: 20.0, CLOUD: 20.0}, clock, confirm_sends=confirm_sends)
    poller = Poller(Config(poll_interval=1.0), FakeApi(clock), StateStore(), budget, clock)
    poller.set_targets([task(0), task(1)])
    poller.mark_started()
    first = min(poller.due_time(t.key) or 0.0 for t in (task(0), task(1)))
    clock.advance(max(0.0, first - clock.monotonic()))
    return poller, clock, budget


def test_the_dispatcher_hands_each_target_out_with_its_token_and_sleeps_until_the_next_slot(
) -> None:
    """A due target goes to a worker with a token granted by the dispatcher; a target due
    before the lane's next free slot (here, behind a throttle's pause) waits for that slot in
    the dispatcher, so the dispatcher's next wake is the slot (one wake per request), not the
    target's due time."""
    poller, clock, budget = two_targets_half_a_second_apart()
    assert poller.dispatch() == pytest.approx(0.5)  # the second target's due time
    jobs = _handed(poller)
    assert len(jobs) == 1 and jobs[0][1] is not None
    budget.limiter(AI).on_throttled(sent_at=clock.monotonic())  # no limit stated: pause 1 s
    assert poller.dispatch() == pytest.approx(1.0)  # the pause's end, not the due time
    assert _handed(poller) == []
    clock.advance(1.0)
    assert poller.dispatch() == pytest.approx(1.0)  # nothing else waits
    jobs = _handed(poller)
    assert len(jobs) == 1
    ticket = jobs[0][1]
    assert isinstance(ticket, tuple)
    assert ticket[2] == pytest.approx(0.5)  # waited from its due time to the slot


def test_a_polls_first_attempt_takes_the_token_the_dispatcher_granted() -> None:
    """The worker's first acquire returns at once with the dispatcher's grant and its wait; no
    second slot is reserved for the same request."""
    poller, _, budget = two_targets_half_a_second_apart()
    limiter = budget.limiter(AI)
    waits: list[float] = []

    def poll(target: Target, cancel: threading.Event) -> Outcome:
        waits.append(limiter.acquire(cancel))
        return Outcome(TaskStatus("InProgress", "InProgress", 1.0, target.task_id, "", "r"), 1,
                       0.01)

    poller._poll = poll  # the client's describe acquires first, as this does
    poller.dispatch()
    (key, ticket), = _handed(poller)
    poller.poll_one(key, ticket)  # type: ignore[arg-type]
    assert waits == [0.0]
    assert limiter.free_in() == pytest.approx(0.05)  # one grant counted, not two


def test_a_target_removed_while_its_token_waits_gives_the_slot_back() -> None:
    """A job whose target was removed before its poll releases its token unused: the lane's
    window a whole rate later is not held up by a request that was never sent."""
    poller, clock, budget = two_targets_half_a_second_apart(confirm_sends=True)
    poller.dispatch()
    (key, ticket), = _handed(poller)
    poller.remove_targets([key])
    poller.poll_one(key, ticket)  # type: ignore[arg-type]
    for _ in range(19):  # the rest of the window
        clock.advance(budget.limiter(AI).reserve())
    clock.advance(1.0)
    assert budget.limiter(AI).free_in() == 0.0  # without the release: held until a report


class SenderOnlyLimiter(RateLimiter):
    """Grants only to the sending thread, as the shared Redis limiter does."""

    def grant_ahead(self) -> None:  # type: ignore[override]
        return None

    def free_in(self) -> None:  # type: ignore[override]
        return None


def test_a_limiter_that_grants_only_to_senders_gets_targets_at_their_due_time() -> None:
    """With a limiter that never grants ahead (the shared one), due targets go to the workers
    without a token, at their due time, and the workers acquire as before."""
    clock = FakeClock(1000.0)
    budget = Budget({AI: 20.0, CLOUD: 20.0}, clock,
                    factory=lambda lane, rate: SenderOnlyLimiter(rate, clock, name=lane))
    poller = Poller(Config(poll_interval=1.0), FakeApi(clock), StateStore(), budget, clock)
    poller.set_targets([task(0), task(1)])
    dues = sorted(poller.due_time(t.key) or 0.0 for t in (task(0), task(1)))
    clock.advance(max(0.0, dues[0] - clock.monotonic()))
    sleep = poller.dispatch()
    assert [ticket for _, ticket in _handed(poller)] == [None]
    assert sleep == pytest.approx(dues[1] - clock.monotonic())


def test_the_dispatcher_with_no_targets_sleeps_at_most_a_second() -> None:
    """No target and no lane waiting (an exporter started empty, waiting for registrations or
    callbacks): a dispatch hands out nothing and sleeps 1 s instead of failing."""
    clock = FakeClock(1000.0)
    budget = Budget({AI: 20.0}, clock)
    poller = Poller(Config(poll_interval=1.0), FakeApi(clock), StateStore(), budget, clock)
    assert poller.dispatch() == 1.0
    assert _handed(poller) == []
