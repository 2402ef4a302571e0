"""The callback sender: turns the simulator's task lifecycles into signed TRTC callbacks.

Each ``step()`` looks at every task at the clock's ``time()`` and queues what happened since the
last step — a start when a task becomes InProgress (a failed start, ``Payload.Status`` 1, when a
task of ``failed_starts`` first exists), sentences at ``sentences_per_minute`` while InProgress
(none for ``silent_tasks``), a stop when it leaves InProgress — then delivers the queued events
that are due. A delivery that does not get HTTP 200 within 5 s is retried like TRTC does: at once,
then every 10 s until the event is one minute old (docs 66149 and 80094, "Timeout and Retry"); each
retry is the same event (same ``EventMsTs``) with a new ``CallbackTs`` and signature. With
``forged: true`` the first event is also sent once with a wrong ``Sign`` (never retried).

The queue is bounded (``max_pending``; the oldest is dropped and counted). ``start()`` runs steps
on a daemon thread every ``tick`` seconds of the injected clock; ``stop()`` ends it. Tests drive
``step()`` directly on a FakeClock.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import requests

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.simulator import callbacks
from trtc_exporter.simulator.callback_config import CallbackSpec
from trtc_exporter.simulator.callbacks import Event, Kind
from trtc_exporter.simulator.tasks import Task, TaskStore, TaskView

log = logging.getLogger(__name__)

ANSWER_TIMEOUT = 5.0
"""Seconds TRTC waits for the receiver's answer (docs: 5 s)."""
RETRY_EVERY = 10.0
"""Seconds between retries after the immediate one."""
RETRY_FOR = 60.0
"""Seconds after the first attempt when retrying stops."""
MAX_CATCH_UP = 10
"""Most sentences one task emits in one step (a stalled clock must not flood the receiver)."""


@dataclass(slots=True)
class _TaskState:
    cycle: float
    last_sentence: float
    failed: bool = False
    stopped: bool = False


@dataclass(slots=True)
class _Delivery:
    event: Event
    due: float
    first: float | None = None
    attempts: int = 0
    forged: bool = False


class CallbackSender:
    """Generates and delivers the callbacks of one simulator's tasks (see module docstring)."""

    def __init__(
        self,
        spec: CallbackSpec,
        store: TaskStore,
        clock: Clock = SYSTEM_CLOCK,
        *,
        tick: float = 0.5,
        max_pending: int = 10_000,
        session: requests.Session | None = None,
    ) -> None:
        self.spec = spec
        self._store = store
        self._clock = clock
        self._tick = tick
        self._max_pending = max_pending
        self._session = session or _session()
        self._states: dict[str, _TaskState] = {}
        self._pending: deque[_Delivery] = deque()
        self._forged_done = not spec.forged
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- generation ------------------------------------------------------------------------------
    def step(self) -> None:
        """Queue the events up to now and deliver every due one (one pass)."""
        now = self._clock.time()
        for task, view in self._store.snapshot(now):
            for event in self._events(task, view, now):
                self._enqueue(event, now)
        self._deliver_due()

    def _events(self, task: Task, view: TaskView | None, now: float) -> list[Event]:
        state = self._states.get(task.task_id)
        room = task.session_id or f"sim-room-{task.task_id}"

        def event(kind: Kind, at: float, failed: bool = False) -> Event:
            return Event(task.api, kind, task.sdk_app_id, task.task_id, room, at, failed)

        if task.task_id in self.spec.failed_starts:
            if state is None and view is not None:
                self._states[task.task_id] = _TaskState(view.start_time, now, failed=True)
                return [event(Kind.START, now, failed=True)]
            return []
        running = view is not None and view.status == "InProgress"
        out = []
        if state is not None and not state.stopped and (
            not running or (view is not None and view.start_time != state.cycle)
        ):
            state.stopped = True
            out.append(event(Kind.STOP, now))
        new_cycle = state is None or (state.stopped and view is not None
                                      and view.start_time != state.cycle)  # fmt: skip
        if running and view is not None and new_cycle:
            state = _TaskState(view.start_time, now)
            self._states[task.task_id] = state
            out.append(event(Kind.START, now))
        if running and state is not None and not state.stopped:
            out.extend(event(Kind.SENTENCE, t) for t in self._sentences(task.task_id, state, now))
        return out

    def _sentences(self, task_id: str, state: _TaskState, now: float) -> list[float]:
        rate = self.spec.sentences_per_minute
        if rate <= 0 or task_id in self.spec.silent_tasks:
            return []
        every = 60.0 / rate
        if now - state.last_sentence > MAX_CATCH_UP * every:
            state.last_sentence = now - MAX_CATCH_UP * every
        times = []
        while now - state.last_sentence >= every:
            state.last_sentence += every
            times.append(state.last_sentence)
        return times

    def _enqueue(self, event: Event, now: float) -> None:
        with self._lock:
            self._counts[f"events_{event.event_type}"] += 1
            if not self._forged_done:
                self._forged_done = True
                self._pending.append(_Delivery(event, now, forged=True))
            self._pending.append(_Delivery(event, now))
            while len(self._pending) > self._max_pending:
                self._pending.popleft()
                self._counts["dropped"] += 1

    # -- delivery --------------------------------------------------------------------------------
    def _deliver_due(self) -> None:
        with self._lock:
            now = self._clock.time()
            due = [d for d in self._pending if d.due <= now]
        for delivery in due:
            if self._stop.is_set():
                return
            self._attempt(delivery)

    def _attempt(self, delivery: _Delivery) -> None:
        ok = self._post(delivery)
        if not ok and delivery.attempts == 1 and not delivery.forged:
            ok = self._post(delivery)  # TRTC retries a failed delivery at once
        now = self._clock.time()
        with self._lock:
            first = delivery.first if delivery.first is not None else now
            if ok or delivery.forged or now + RETRY_EVERY > first + RETRY_FOR:
                if delivery in self._pending:
                    self._pending.remove(delivery)
                if not ok and not delivery.forged:
                    self._counts["expired"] += 1
            else:
                delivery.due = now + RETRY_EVERY

    def _post(self, delivery: _Delivery) -> bool:
        now = self._clock.time()
        if delivery.first is None:
            delivery.first = now
        delivery.attempts += 1
        event = delivery.event
        body = callbacks.encode(event.document(now))
        key = self.spec.keys.get(event.sdk_app_id)
        secret = "Forged0" + ("x" * 8) if delivery.forged else (key.reveal() if key else None)
        headers = callbacks.headers(event.sdk_app_id, body, secret)
        try:
            response = self._session.post(self.spec.url, data=body, headers=headers,
                                          timeout=ANSWER_TIMEOUT)  # fmt: skip
            ok = response.status_code == 200
            response.close()
        except requests.RequestException as exc:
            log.debug("callback %s for %s failed: %s", event.event_type, event.task_id, exc)
            ok = False
        with self._lock:
            self._counts["forged" if delivery.forged else "delivered" if ok else "failed"] += 1
            if delivery.attempts > 1:
                self._counts["retries"] += 1
        return ok

    # -- thread ----------------------------------------------------------------------------------
    def start(self) -> None:
        """Run ``step`` every ``tick`` seconds on a daemon thread until ``stop``."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="trtc-sim-callbacks",
                                            daemon=True)  # fmt: skip
            self._thread.start()

    def stop(self, timeout: float = ANSWER_TIMEOUT + 1) -> None:
        """Stop the thread (an in-flight delivery may take up to its 5 s timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except Exception:  # a sender bug must not end callbacks silently for the whole run
                log.exception("callback sender step failed")
            self._clock.wait(self._stop, self._tick)

    def stats(self) -> dict[str, Any]:
        """Counters: ``events_<type>``, delivered, failed, retries, expired, dropped, forged."""
        with self._lock:
            return {**dict(sorted(self._counts.items())), "pending": len(self._pending)}


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a receiver on 127.0.0.1 must not go through a proxy
    return session
