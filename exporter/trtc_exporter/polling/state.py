"""Per-target snapshots, written only by the poller and read by the collector and web pages.

Records are immutable and swapped whole under a lock, so a scrape always sees a consistent record
for each target without ever blocking a poll for long.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace

from trtc_exporter.api.outcome import Outcome
from trtc_exporter.clock import WallSeconds
from trtc_exporter.polling.intervals import STALE_AFTER_INTERVALS
from trtc_exporter.response import (
    NOT_FOUND,
    NOT_FOUND_CODES,
    UNKNOWN,
    TaskStatus,
    is_auth_failure,
)
from trtc_exporter.target import Target

ENDED_STATES = frozenset({"Stopped", "Exited"})
ACTIVE_STATES = frozenset({"Preparing", "InProgress"})
HISTORY_LIMIT = 16
"""Status transitions kept per target (the landing page's status strip): at most this many
(wall-clock seconds, status) pairs, oldest dropped first, so memory stays bounded per target."""

AppKey = tuple[str, str, str]
UsageKey = tuple[str, str, str, str]


@dataclass(frozen=True, slots=True)
class TargetState:
    """Everything known about one target after its last poll."""

    target: Target
    status: str = UNKNOWN
    start_time: float | None = None
    resolved_task_id: str = ""
    last_success: float = 0.0  # last answer that carried the task's status
    last_answer: float = 0.0  # last answer of any kind, NotFound included
    last_poll: float = 0.0
    poll_success: bool | None = None
    status_change_time: float | None = None
    last_error_code: str = ""
    last_request_id: str = ""
    last_latency: float = 0.0
    attempts: int = 0
    interval: float = 0.0
    next_poll: float = 0.0
    seen: bool = False  # the API has returned a status for it at least once
    ended_at: float | None = None
    not_found_streak: int = 0
    history: tuple[tuple[float, str], ...] = ()  # (wall s, new status), at most HISTORY_LIMIT
    # facts from TRTC event callbacks (webhook/): never the transcript, only counts and times
    sentences: int = 0  # complete sentences (903/1403) received for the task
    last_sentence: float | None = None  # EventMsTs of the last one, Unix seconds
    event_time: float = 0.0  # when the last callback about the task was received (0: none)
    first_event: float = 0.0  # when the first one was (silence is judged from then on)

    def shown_status(self, now: WallSeconds) -> str:
        """Unknown when no answer arrived within STALE_AFTER_INTERVALS planned intervals."""
        stale = bool(self.interval) and (now - self.last_answer
                                         > STALE_AFTER_INTERVALS * self.interval)
        if self.last_answer == 0.0 or stale:
            return UNKNOWN
        return self.status

    @property
    def stale_since(self) -> float | None:
        """Wall-clock seconds from which shown_status turns Unknown (None: no answer or no
        planned interval yet)."""
        if not self.last_answer or not self.interval:
            return None
        return self.last_answer + STALE_AFTER_INTERVALS * self.interval

    @property
    def app_key(self) -> AppKey:
        """``(api, region, sdk_app_id or "")``: the key of the per-app totals."""
        t = self.target
        return (t.api, t.region, "" if t.sdk_app_id is None else str(t.sdk_app_id))

    @property
    def usage_key(self) -> UsageKey:
        """(api, region, sdk_app_id, account): usage is counted per account too."""
        return (*self.app_key, self.target.account)


_FIELDS = tuple(field.name for field in fields(TargetState))
_values = operator.attrgetter(*_FIELDS)
_POSITION = {name: i for i, name in enumerate(_FIELDS)}


def evolve(state: TargetState, **changes: object) -> TargetState:
    """``dataclasses.replace(state, **changes)`` for the records a poll writes, at about 60 %
    of its CPU (2.3 against 3.9 us warm on the 2-CPU bench VM; ``replace`` reads the fields in
    a Python loop, ``attrgetter`` in one C call; a poll makes two; issue 16). KeyError for a
    name that is not a field."""
    values = list(_values(state))
    for name, value in changes.items():
        values[_POSITION[name]] = value
    return TargetState(*values)


def apply_outcome(prev: TargetState, outcome: Outcome, now: WallSeconds) -> TargetState:
    """The new record after a poll; failures keep the last known status (it goes stale)."""
    result = outcome.result
    # one copy per poll: the record has some 25 fields, each copy costs (issue 16)
    polled = {"last_poll": now, "last_latency": outcome.latency, "attempts": outcome.attempts,
              "last_request_id": result.request_id}
    if isinstance(result, TaskStatus):
        return _with_status(prev, result.status, now, **polled, poll_success=True,
                            last_success=now, last_error_code="", start_time=result.start_time,
                            resolved_task_id=_resolved(result.task_id, prev),
                            seen=True, not_found_streak=0)
    if result.code in NOT_FOUND_CODES:
        return _with_status(prev, NOT_FOUND, now, **polled, poll_success=True,
                            last_error_code=result.code,
                            not_found_streak=prev.not_found_streak + 1)
    return evolve(prev, **polled, poll_success=False, last_error_code=result.code)


def _resolved(answered: str, prev: TargetState) -> str:
    """The task id an answer named, as a string the record already holds when equal (the
    target's own TaskId, or the last answer's): one string per target, not one per poll."""
    if not answered or answered == prev.resolved_task_id:
        return prev.resolved_task_id
    return prev.target.task_id if answered == prev.target.task_id else answered


def apply_event(prev: TargetState, now: WallSeconds, *, ended: str | None = None,
                change_time: float | None = None, sentence_time: float | None = None
                ) -> TargetState:
    """The record after a verified callback about the task, received at ``now``.

    ``ended`` (Stopped or Exited, from 902/1402) shows the task ended at once, with
    ``change_time`` (the event's EventMsTs) as its change time; ``sentence_time`` (903/1403)
    counts one sentence. Poll facts (last success, poll success) are left alone.
    """
    state = replace(prev, event_time=now, first_event=prev.first_event or now)
    if sentence_time is not None:
        last = max(sentence_time, prev.last_sentence or sentence_time)
        state = replace(state, sentences=prev.sentences + 1, last_sentence=last)
    if ended is not None and prev.status != ended:
        state = _with_status(state, ended, now)
        state = replace(state, status_change_time=change_time or now)
    return state


def with_event_facts(new: TargetState, current: TargetState | None) -> TargetState:
    """A poll's record with the callback facts that arrived while it was in flight kept."""
    if current is None or current.event_time <= new.event_time:
        return new
    return replace(new, sentences=current.sentences, last_sentence=current.last_sentence,
                   event_time=current.event_time, first_event=current.first_event)


def _with_status(prev: TargetState, status: str, now: float, **changes: object) -> TargetState:
    """``prev`` with an answered ``status`` at ``now`` and ``changes``, in one copy."""
    changed = status != prev.status
    history = (prev.history + ((now, status),))[-HISTORY_LIMIT:] if changed else prev.history
    seen = changes.get("seen", prev.seen)
    gone = status in ENDED_STATES or (status == NOT_FOUND and bool(seen))
    ended_at = (now if prev.ended_at is None else prev.ended_at) if gone else None
    return evolve(prev, status=status, last_answer=now,
                  status_change_time=now if changed else prev.status_change_time,
                  history=history, ended_at=ended_at, **changes)


def all_auth_failures(states: Iterable[TargetState]) -> str:
    """The most frequent error code when the latest poll of every polled target failed with an
    authentication or authorisation error (``response.is_auth_failure``), else ""."""
    codes: dict[str, int] = {}
    for state in states:
        if state.poll_success is None:
            continue  # not polled yet
        if state.poll_success or not is_auth_failure(state.last_error_code):
            return ""
        codes[state.last_error_code] = codes.get(state.last_error_code, 0) + 1
    return max(sorted(codes), key=codes.__getitem__, default="")


def _add(table: dict[UsageKey, float], key: UsageKey, seconds: float) -> None:
    table[key] = table.get(key, 0.0) + seconds


class StateStore:
    """The shared table of records plus the per-application usage accumulators."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[tuple[str, ...], TargetState] = {}
        self._in_progress_seconds: dict[UsageKey, float] = {}
        self._translation_seconds: dict[UsageKey, float] = {}

    def get(self, key: tuple[str, ...]) -> TargetState | None:
        """The state of one target key (None when unknown)."""
        with self._lock:
            return self._states.get(key)

    def put(self, state: TargetState) -> None:
        """Store a new state for its target."""
        with self._lock:
            self._states[state.target.key] = state

    def record_poll(self, prev: TargetState, new: TargetState) -> None:
        """Store a poll's result and add observed InProgress time to its application."""
        with self._lock:
            if new.target.key not in self._states:
                return  # removed while the poll was in flight: do not resurrect its series
            self._states[new.target.key] = new
            if prev.status == "InProgress" and new.status == "InProgress" and prev.last_answer:
                key = new.usage_key
                seconds = max(0.0, new.last_answer - prev.last_answer)
                _add(self._in_progress_seconds, key, seconds)
                if new.target.translation:
                    _add(self._translation_seconds, key, seconds)

    def sync(self, targets: Iterable[Target]) -> None:
        """Make the table hold exactly these targets; survivors keep their record."""
        with self._lock:
            wanted = {t.key: t for t in targets}
            for key in list(self._states):
                if key not in wanted:
                    del self._states[key]
            for key, target in wanted.items():
                old = self._states.get(key)
                if old is None:
                    self._states[key] = TargetState(target)
                elif old.target is not target:
                    self._states[key] = replace(old, target=target)

    def add(self, targets: Iterable[Target]) -> None:
        """Start a record for each target that has none (an incremental :meth:`sync`)."""
        with self._lock:
            for target in targets:
                self._states.setdefault(target.key, TargetState(target))

    def retarget(self, targets: Iterable[Target]) -> None:
        """Give the records of these targets' keys the new target (labels, interval, source…),
        keeping what the polls found; a key without a record is ignored."""
        with self._lock:
            for target in targets:
                old = self._states.get(target.key)
                if old is not None and old.target is not target:
                    self._states[target.key] = replace(old, target=target)

    def remove(self, key: tuple[str, ...]) -> None:
        """Forget a target's state (it left the target set or retired)."""
        with self._lock:
            self._states.pop(key, None)

    def snapshot(self) -> list[TargetState]:
        """Every target's current state (immutable records; safe to read without a lock)."""
        with self._lock:
            return list(self._states.values())

    def usage(self) -> dict[UsageKey, float]:
        """Observed InProgress seconds per (api, region, sdk_app_id, account), a counter."""
        with self._lock:
            return dict(self._in_progress_seconds)

    def translation_usage(self) -> dict[UsageKey, float]:
        """The part of usage() spent by targets configured with ``translation: true``."""
        with self._lock:
            return dict(self._translation_seconds)

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)
