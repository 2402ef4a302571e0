"""The background poller: decides when each target is polled and runs the polls.

A dispatcher thread moves due targets into one lane per API action (per account and action with
``accounts:``, see ``Target.lane``); each lane has its own workers and its own budget, so a
saturated 1.0 budget never delays a 2.0 poll. A target is never queued twice (no pile-up): it
is rescheduled only when its poll has finished.

The dispatcher hands a due target to a worker together with its first budget token when the
lane's limiter grants ahead (``Limiter.grant_ahead``: the local limiter does). It wakes once per
request, at the later of the due time and the lane's next free budget slot (a target due before
that slot is taken from the schedule early and waits for the slot in the dispatcher), so
neither it nor the worker sleeps twice: two thread wakes fewer per request than a dispatcher
waking at the due time and a worker sleeping in the limiter until the slot (docs/performance.md,
issue 16 goal 5). First due, first served; retries still take their tokens in the worker, and a
shared (Redis) limiter, which never grants ahead, is asked by the worker as before.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass

from trtc_exporter.api.budget import Budget, Grant, Limiter
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.clock import Clock, MonoSeconds
from trtc_exporter.config.model import Config
from trtc_exporter.errors import counted
from trtc_exporter.polling.due import Key, Schedule, spread
from trtc_exporter.polling.failures import FailureLog
from trtc_exporter.polling.intervals import effective_interval
from trtc_exporter.polling.planning import capacity, state_interval, stretch_factor
from trtc_exporter.polling.state import (
    StateStore,
    TargetState,
    apply_event,
    apply_outcome,
    evolve,
    with_event_facts,
)
from trtc_exporter.polling.workers import Workers
from trtc_exporter.response import ApiFailure
from trtc_exporter.target import Target

log = logging.getLogger("trtc_exporter.scheduler")  # caller= stays as before
PollFn = Callable[[Target, threading.Event], Outcome]
Ticket = tuple[Limiter, Grant, float]  # a token granted ahead: its limiter, grant, seconds waited
Job = tuple[Key, Ticket | None]


@dataclass(slots=True)
class PollerStats:
    """What the health endpoints and internal metrics read."""

    ready: bool = False
    last_progress: float = 0.0
    last_cycle_time: float = 0.0
    cycle_duration: float = 0.0
    retired: int = 0


class Poller:
    """Polls every target when due, one worker lane per budget lane, and writes the results into the
    state store (it is the only writer). ``poll`` is the client's ``describe``; intervals are
    seconds, stretched per action by the capacity plan; due times are monotonic seconds."""

    def __init__(self, config: Config, poll: PollFn, store: StateStore, budget: Budget,
                 clock: Clock) -> None:
        self._config = config
        self._poll = poll
        self._store = store
        self._budget = budget
        self._clock = clock
        self._lock = threading.RLock()
        self._schedule = Schedule()
        self._targets: dict[Key, Target] = {}
        self._retired: set[Key] = set()
        self._lanes: dict[str, Workers[Job]] = {}
        self._waiting: dict[str, deque[Key]] = {}  # due, waiting in the dispatcher for a token
        self._threads: list[threading.Thread] = []
        self._running = False
        self._stop = threading.Event()
        self._wake = threading.Event()  # the schedule changed: the dispatcher looks again now
        self._wake_at = math.inf  # monotonic s: when the dispatcher looks next by itself
        self._stretch: dict[str, float] = {}
        self._demand: dict[str, float] = {}  # per lane: the sum of its targets' _rate_of
        self._rate_of: dict[Key, float] = {}  # per target: requests/s at its last interval
        self._cycle_pending: set[Key] = set()
        self._cycle_start: float = clock.monotonic()  # MonoSeconds
        self._last_plan = -1.0
        self._due_of: dict[Key, float] = {}
        self._share: Callable[[], float] = lambda: 1.0  # fraction of each lane's budget to plan
        # api -> task_id -> key, for callbacks (nested: no (api, task_id) tuple per target)
        self._by_task: dict[str, dict[str, Key]] = {}
        self._soon: set[Key] = set()  # confirm by a poll as soon as the current one is done
        self.stats = PollerStats(last_progress=clock.time())
        self.failures = FailureLog(clock)

    # -- target set -------------------------------------------------------------------------
    def set_targets(self, targets: Iterable[Target], config: Config | None = None) -> None:
        """Swap the target set; survivors keep state and schedule, new ones get a phase slot."""
        with self._lock:
            if config is not None:
                self._config = config
            wanted = {t.key: t for t in targets}
            self._retired &= wanted.keys()
            active = {k: t for k, t in wanted.items() if k not in self._retired}
            for key in self._targets.keys() - active.keys():
                self._schedule.remove(key)
                self._due_of.pop(key, None)
            new_keys = [k for k in active if k not in self._targets]
            self._targets = active
            self._by_task = {}
            for key, target in active.items():
                self._index_task_locked(key, target.task_id or self._resolved_id(key))
            self._soon &= active.keys()
            self._store.sync(active.values())
            self.failures.retain(active.keys())
            self._replan_locked()
            self._cycle_pending &= active.keys()
            self._schedule_new_locked(new_keys)

    def _schedule_new_locked(self, new_keys: list[Key]) -> None:
        """New targets get a phase slot in their interval and join the current cycle."""
        now = self._clock.monotonic()
        offsets = spread(new_keys)
        for key in new_keys:
            self._schedule.set(key, now + offsets[key] *
                               self._interval_after(self._state_of(key)))
        self._cycle_pending |= set(new_keys)
        self._wake.set()

    def add_targets(self, targets: Iterable[Target]) -> None:
        """Add targets without re-planning the whole set (a registration): O(added).

        Their demand joins the plan of their action at once.
        """
        with self._lock:
            new = {t.key: t for t in targets
                   if t.key not in self._targets and t.key not in self._retired}
            if not new:
                return
            self._targets.update(new)
            self._store.add(new.values())
            for key, target in new.items():
                self._index_task_locked(key, target.task_id or self._resolved_id(key))
            self._stretch_locked({self._count_locked(key, self._state_of(key)) for key in new})
            self._schedule_new_locked(list(new))

    def change_targets(self, targets: Iterable[Target]) -> None:
        """Swap in new versions of polled targets (same key; labels, poll_interval, account or
        source changed, e.g. a target-file edit) without re-planning the whole set: O(changed).

        As with set_targets, each keeps its state, schedule and failures; its demand moves to
        its new interval and lane at once. Keys not polled here are ignored.
        """
        with self._lock:
            changed = {t.key: t for t in targets if t.key in self._targets}
            lanes: set[str] = set()
            for key, target in changed.items():
                lanes.add(self._uncount_locked(key, self._targets[key].lane))
                self._targets[key] = target
            self._store.retarget(changed.values())
            for key in changed:
                lanes.add(self._count_locked(key, self._state_of(key)))
            self._stretch_locked(lanes)

    def _count_locked(self, key: Key, state: TargetState) -> str:
        """Count the requests/s of ``state``'s interval as ``key``'s share of its lane's demand,
        in place of what was counted for it before (an O(1) step); the lane. Called wherever a
        target's state-aware interval may change: added, changed, polled, told by a callback."""
        lane = state.target.lane
        rate = 1.0 / self._base_interval(state)
        self._add_demand(lane, rate - self._rate_of.get(key, 0.0))
        self._rate_of[key] = rate
        return lane

    def _uncount_locked(self, key: Key, lane: str) -> str:
        """Take ``key``'s requests/s out of ``lane``'s demand (removed, retired, moved); the
        lane."""
        self._add_demand(lane, -self._rate_of.pop(key, 0.0))
        return lane

    def _add_demand(self, lane: str, change: float) -> None:
        # a sum kept by additions carries rounding: what is left of a lane's last target is 0
        total = self._demand.get(lane, 0.0) + change
        self._demand[lane] = total if total > 1e-9 else 0.0

    def remove_targets(self, keys: list[Key]) -> None:
        """Drop targets without re-planning the whole set (a deregistration): O(removed)."""
        with self._lock:
            for key in keys:
                target = self._targets.pop(key, None)
                self._retired.discard(key)
                if target is None:
                    continue
                self._stretch_locked({self._uncount_locked(key, target.lane)})
                tasks = self._by_task.get(key[0], {})
                task_id = target.task_id or self._resolved_id(key)
                if tasks.get(task_id) == key:
                    del tasks[task_id]
                self._schedule.remove(key)
                self._due_of.pop(key, None)
                self._cycle_pending.discard(key)
                self._soon.discard(key)
                self._store.remove(key)
            self.failures.forget(keys)

    def set_share(self, share: Callable[[], float]) -> None:
        """Plan with the fraction ``share()`` (0 < x <= 1, read at every replan) of each lane's
        budget: replicas sharing one limiter stretch their intervals together."""
        with self._lock:
            self._share = share

    def targets(self) -> list[Target]:
        """The targets being polled (after merge and shard filter)."""
        with self._lock:
            return list(self._targets.values())

    @property
    def demand(self) -> dict[str, float]:
        """Requests/s each action needs at the state-aware intervals, before stretching."""
        with self._lock:
            return dict(self._demand)

    @property
    def stretch(self) -> dict[str, float]:
        """The stretch factor (>= 1) of each action with targets."""
        with self._lock:
            return dict(self._stretch)

    def effective_interval(self, action: str) -> float:
        """Seconds between polls of an action's targets at the base ``poll_interval``, stretched
        by the capacity plan (the base interval itself for an action without targets)."""
        with self._lock:
            return effective_interval(self._config.poll_interval, self._stretch.get(action, 1.0))

    def due_time(self, key: Key) -> MonoSeconds | None:
        """Monotonic due time of a target's next poll (None while it is being polled)."""
        with self._lock:
            due = self._schedule.due_at(key)
            return None if due is None else MonoSeconds(due)

    def overdue_seconds(self) -> float:
        """Age in seconds of the most overdue poll: now minus the earliest due time of a target
        still waiting to be handed out, queued for a worker or in flight; 0 when none is late.

        Judged against the work really due, so settled targets (Stopped every 10 intervals,
        NotFound backing off) never look like a stall, while a dead dispatcher or a hung
        worker makes it grow without bound.
        """
        with self._lock:
            now = self._clock.monotonic()
            earliest = min(self._due_of.values(), default=math.inf)
            nxt = self._schedule.next_due()
            if nxt is not None:
                earliest = min(earliest, nxt)
            return max(0.0, now - earliest) if earliest != math.inf else 0.0

    # -- planning ---------------------------------------------------------------------------
    def _state_of(self, key: Key) -> TargetState:
        return self._store.get(key) or TargetState(self._targets[key])

    def _base_interval(self, state: TargetState) -> float:
        """The state-aware interval before stretching."""
        age = self._clock.time() - state.event_time if state.event_time else None
        return state_interval(state.target, state.status, state.seen, state.not_found_streak,
                              self._config, age)

    # -- callbacks (webhook/) ---------------------------------------------------------------
    def find_task(self, api: str, task_id: str) -> Key | None:
        """The key of the polled target watching this task id of this API, if any."""
        with self._lock:
            return self._by_task.get(api, {}).get(task_id)

    def _resolved_id(self, key: Key) -> str:
        state = self._store.get(key)
        return state.resolved_task_id if state is not None else ""

    def _index_task_locked(self, key: Key, task_id: str) -> None:
        """Callbacks name tasks by TaskId: index session targets by the TaskId polls found."""
        if task_id:
            self._by_task.setdefault(key[0], {}).setdefault(task_id, key)

    def observe(self, key: Key, *, ended: str | None = None, change_time: float | None = None,
                sentence_time: float | None = None, confirm: bool = False) -> bool:
        """Record a verified callback about a polled target (see ``state.apply_event``); with
        ``confirm`` the target is due now, so a poll confirms it as soon as the budget gives a
        token (never outside the budget). False when the target is not polled here."""
        with self._lock:
            if key not in self._targets:
                return False
            state = apply_event(self._state_of(key), self._clock.time(), ended=ended,
                                change_time=change_time, sentence_time=sentence_time)
            self._store.put(state)
            self._count_locked(key, state)
            if confirm:
                self._poll_soon_locked(key)
            return True

    def _poll_soon_locked(self, key: Key) -> None:
        now = self._clock.monotonic()
        if key in self._schedule:
            if (self._schedule.due_at(key) or now) > now:
                self._schedule.set(key, now)
                self._wake.set()
        else:  # being polled now: poll again right after
            self._soon.add(key)

    def _interval_after(self, state: TargetState) -> float:
        return self._base_interval(state) * self._stretch.get(state.target.lane, 1.0)

    def _replan_locked(self) -> None:
        """Count every target's demand afresh (a whole new target set: O(targets))."""
        self._demand, self._rate_of = {}, {}
        for key in self._targets:
            self._count_locked(key, self._state_of(key))
        self._stretch = {lane: self._stretch.get(lane, 1.0) for lane in self._demand}
        self._stretch_locked(set(self._demand))

    def _stretch_locked(self, lanes: set[str]) -> None:
        """Recompute the stretch of these lanes from ``_demand`` (an O(1) step per lane), with
        this replica's ``share()`` of each lane's budget."""
        share = min(1.0, max(1e-3, self._share()))
        for lane in lanes:
            needed = self._demand.get(lane, 0.0)
            limiter = self._budget.limiter(lane)
            available = capacity(limiter.effective_rate, limiter.guard) * share
            stretch = stretch_factor(needed, available)
            if stretch > 1.0 and self._stretch.get(lane, 1.0) <= 1.0:
                count = sum(1 for t in self._targets.values() if t.lane == lane)
                log.warning("%s: %s need %.1f req/s; budget %.1f req/s; intervals "
                            "stretched x%.2f", lane, counted(count, "target"), needed,
                            available, stretch)
            self._stretch[lane] = stretch

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the dispatch thread; each lane's workers start as its jobs come."""
        self._running = True
        for lane in self._lanes.values():
            lane.start()
        dispatcher = threading.Thread(target=self._dispatch_loop, name="dispatcher", daemon=True)
        dispatcher.start()
        self._threads.append(dispatcher)

    def _ensure_lane(self, action: str) -> Workers[Job]:
        """The lane's workers: at most 1.5 x its configured rate (4-64) threads, enough for
        the requests in flight at full budget with answers taking up to 1.5 s."""
        lane = self._lanes.get(action)
        if lane is not None:
            return lane
        rate = self._budget.limiter(action).configured_rate
        lane = Workers[Job](self._run_job, min(64, max(4, math.ceil(rate * 1.5))),
                            f"poll-{action}")
        with self._lock:  # stop() closes the lanes it sees under the lock, so none is missed
            self._lanes[action] = lane
            if self._stop.is_set():
                lane.close()  # met by a dispatch still running at stop: takes no job
            elif self._running:
                lane.start()
        return lane

    def stop(self, timeout: float = 5.0) -> None:
        """Stop dispatching, let in-flight polls finish within ``timeout`` seconds."""
        self._stop.set()
        self._wake.set()
        threads = list(self._threads)
        with self._lock:  # the dispatcher may be adding a lane (_ensure_lane)
            lanes = list(self._lanes.values())
        for lane in lanes:
            lane.close()
            threads += lane.threads
        deadline = self._clock.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - self._clock.monotonic()))

    def _dispatch_loop(self) -> None:
        while not self._stop.is_set():
            if self._clock.wait(self._wake, self.dispatch()):
                self._wake.clear()  # whoever set it changed the schedule first: dispatch sees it

    def dispatch(self) -> float:
        """Move due targets to their lanes' workers, each with a token when its limiter grants
        ahead; returns the seconds the dispatcher may sleep (until the next due target or the
        next free slot of a lane with targets waiting, at most 1 s). Public so tests can drive
        the dispatcher on a fake clock."""
        jobs: list[tuple[Workers[Job], Job]] = []
        self._wait_in_line(self.take_due())
        waits = {lane: self._hand_out(lane, keys, jobs) for lane, keys in self._waiting.items()}
        # after the hand-outs moved the lanes' next free slots; only a lane given more targets
        # here is asked again (the others' waits were just computed)
        early = self._take_before_slot()
        self._wait_in_line(early)
        for lane in dict.fromkeys(lane for _, lane in early):
            waits[lane] = self._hand_out(lane, self._waiting[lane], jobs)
        sleep = self._plan_wake(min(waits.values(), default=1.0))
        # the workers are woken last, just before this thread sleeps: woken earlier, a worker
        # finds the GIL still held here and sleeps once more waiting for it
        for work, job in jobs:
            work.submit(job)
        return sleep

    def _plan_wake(self, wait: float) -> float:
        """Seconds the dispatcher sleeps: ``wait`` or until the next due target if sooner.
        Noted with the schedule read under the lock, so a poll finishing later with an earlier
        due time (a confirming callback came during it, a short interval) wakes it."""
        with self._lock:
            sleep = min(wait, self.seconds_to_next_due())
            self._wake_at = self._clock.monotonic() + sleep
            return sleep

    def _wait_in_line(self, due: list[tuple[Key, str]]) -> None:
        for key, lane in due:
            self._waiting.setdefault(lane, deque()).append(key)

    def _limiter(self, lane: str) -> Limiter | None:
        """The lane's limiter; None for a lane the budget no longer has (an account removed by
        a reload while its targets wait): the worker's poll then reports it, as before."""
        try:
            return self._budget.limiter(lane)
        except KeyError:
            return None

    def _take_before_slot(self) -> list[tuple[Key, str]]:
        """Targets due before their lane's next free budget slot, taken from the schedule now
        (their due time kept): they cannot start before the slot anyway, so the dispatcher
        sleeps until the slot instead of waking at the due time to find the budget busy."""
        taken: list[tuple[Key, str]] = []
        free_in: dict[str, float | None] = {}  # per lane: nothing here moves its free slot
        with self._lock:
            now = self._clock.monotonic()
            while (head := self._schedule.peek()) is not None:
                due, key = head
                lane = self._targets[key].lane
                if lane not in free_in:
                    limiter = self._limiter(lane)
                    free_in[lane] = limiter.free_in() if limiter is not None else None
                free = free_in[lane]
                if free is None or due > now + free:
                    break
                self._schedule.hold(key)
                self._due_of[key] = due
                taken.append((key, lane))
        return taken

    def _hand_out(self, lane: str, keys: deque[Key],
                  jobs: list[tuple[Workers[Job], Job]]) -> float:
        """Give a lane's waiting targets their tokens while its limiter grants ahead, adding
        each job (with its lane's workers) to ``jobs``; the seconds until the limiter may grant
        again (1 s when nothing waits)."""
        work = self._ensure_lane(lane)
        limiter = self._limiter(lane)
        while keys:
            key = keys[0]
            if key not in self._targets:  # removed while waiting: no token spent on it
                keys.popleft()
                continue
            grant = limiter.grant_ahead() if limiter is not None else None
            if limiter is None or grant is None:  # only the sender is granted: it acquires
                jobs.append((work, (keys.popleft(), None)))
                continue
            if not isinstance(grant, Grant):
                return grant
            keys.popleft()
            waited = max(0.0, self._clock.monotonic() - self._due_of.get(key, math.inf))
            jobs.append((work, (key, (limiter, grant, waited))))
        return 1.0

    def take_due(self) -> list[tuple[Key, str]]:
        """Targets whose time has come (with their action); once a second each lane's stretch
        is recomputed from its demand (O(lanes): the limiter's effective rate and this
        replica's share of it change without a poll; the demand is kept by each change)."""
        with self._lock:
            now = self._clock.monotonic()
            if now - self._last_plan >= 1.0:
                self._stretch_locked(set(self._demand))
                self._last_plan = now
            if not self._targets or not self._cycle_pending:
                self.stats.last_progress = self._clock.time()
            due = self._schedule.pop_due(now)
            self._due_of.update(due)
            return [(key, self._targets[key].lane) for key, _ in due]

    def seconds_to_next_due(self) -> float:
        """How long the loop may sleep: until the next due poll, at most 1 s (so stop and reload
        are noticed promptly), never negative."""
        with self._lock:
            nxt = self._schedule.next_due()
            return 1.0 if nxt is None else min(1.0, max(0.0, nxt - self._clock.monotonic()))

    def _run_job(self, job: Job) -> None:
        if not self._stop.is_set():
            self.poll_one(*job)

    def poll_one(self, key: Key, ticket: Ticket | None = None) -> None:
        """Poll one target now and reschedule it; public so tests can drive polls by hand.
        ``ticket``: its first token, granted ahead by the dispatcher (released unused when the
        target is gone)."""
        with ticket[0].ahead(ticket[1], ticket[2]) if ticket is not None else nullcontext():
            self._poll_one(key)

    def _poll_one(self, key: Key) -> None:
        with self._lock:
            target = self._targets.get(key)
            held = self._schedule.hold(key)
            if held is not None:
                self._due_of[key] = held
        if target is None:
            return
        prev = self._store.get(key) or TargetState(target)
        try:
            outcome = self._poll(target, self._stop)
        except Exception as exc:  # a bug in one poll must not orphan its target
            log.error("poll of %s failed unexpectedly: %s", target.describe(), type(exc).__name__)
            outcome = Outcome(ApiFailure("Other", type(exc).__name__), 1, 0.0)
        self.failures.observe(target, outcome.result)
        new = apply_outcome(prev, outcome, self._clock.time())
        with self._lock:
            current = self._targets.get(key)
            if current is None:
                self._due_of.pop(key, None)
                return
            if current is not target:  # changed in flight: its new labels, interval and lane
                new = evolve(new, target=current)
            self._finish_locked(key, prev, with_event_facts(new, self._store.get(key)))

    def _finish_locked(self, key: Key, prev: TargetState, new: TargetState) -> None:
        now_wall, now = self._clock.time(), self._clock.monotonic()
        if self._should_retire(new, now_wall):
            self._due_of.pop(key, None)
            self._retire_locked(key, new)
        else:
            self._count_locked(key, new)
            interval = self._interval_after(new)
            due = self._next_due(self._due_of.pop(key, now), interval, now)
            if key in self._soon:
                self._soon.discard(key)
                due = now
            new = evolve(new, interval=interval, next_poll=now_wall + (due - now))
            self._store.record_poll(prev, new)
            self._schedule.set(key, due)
            if due < self._wake_at:
                self._wake.set()
            self._index_task_locked(key, new.resolved_task_id)
        self.stats.last_progress = now_wall
        self._cycle_done_locked(key, now)

    @staticmethod
    def _next_due(last_due: float, interval: float, now: float) -> float:
        """Keep the target's phase (due times advance from the last due time, not from when the
        poll finished), so waiting and latency do not slow the whole cycle down; a target more
        than one interval behind is due now rather than owed a burst of catch-up polls."""
        due = last_due + interval
        return due if due >= now - interval else now

    def _should_retire(self, state: TargetState, now: float) -> bool:
        retention = self._config.schedule.stopped_retention
        return state.ended_at is not None and now - state.ended_at >= retention

    def _retire_locked(self, key: Key, state: TargetState) -> None:
        log.info("%s ended (%s) and its retention passed; no longer polled",
                 state.target.describe(), state.status)
        self._retired.add(key)
        self._targets.pop(key, None)
        self._uncount_locked(key, state.target.lane)
        self._store.remove(key)
        self.stats.retired += 1

    def _cycle_done_locked(self, key: Key, now: float) -> None:
        self._cycle_pending.discard(key)
        if self._cycle_pending:
            return
        if not self.stats.ready:
            log.info("first poll cycle done: %s in %.1fs", counted(len(self._targets), "target"),
                     now - self._cycle_start)
        self.stats.ready = True
        self.stats.last_cycle_time = self._clock.time()
        self.stats.cycle_duration = now - self._cycle_start
        self._cycle_start = now
        self._cycle_pending = set(self._targets)

    def mark_started(self) -> None:
        """Begin the first cycle with the current targets (ready when each was polled once)."""
        with self._lock:
            self._cycle_start = self._clock.monotonic()
            if not self._targets:
                self.stats.ready = True

