"""Each target's last state, shared so a replica taking a target over starts from its status.

One HASH maps target id -> a small JSON record (status, start time, change time, last success,
last answer, seen, ended_at, not-found streak, resolved task id, time of the last callback).
Sizes are bounded on write and on read; a row that does not parse or breaks a bound is skipped
and counted, never the others.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass, replace

import redis

from trtc_exporter.coordination.keys import Keys
from trtc_exporter.polling.state import TargetState

log = logging.getLogger(__name__)
MAX_ROW = 1024  # bytes
MAX_TEXT = 128  # characters of a status or task id


@dataclass(frozen=True, slots=True)
class SharedState:
    """The part of a TargetState that outlives the replica that polled it."""

    status: str
    start_time: float | None
    status_change_time: float | None
    last_success: float
    last_answer: float
    seen: bool
    ended_at: float | None
    not_found_streak: int
    resolved_task_id: str
    event_time: float = 0.0
    """When the owner last heard a callback about the task (0: never), as of its last poll: the
    owner polls a task its callbacks keep confirming 4 times less often
    (``planning.EVENT_CONFIRMED_FACTOR``), so the others must judge staleness by that interval
    too, or they show it Unknown between two of the owner's polls."""

    @classmethod
    def of(cls, state: TargetState) -> SharedState:
        """The shared part of ``state``; texts cut to ``MAX_TEXT`` characters."""
        return cls(state.status[:MAX_TEXT], state.start_time, state.status_change_time,
                   state.last_success, state.last_answer, state.seen, state.ended_at,
                   state.not_found_streak, state.resolved_task_id[:MAX_TEXT], state.event_time)

    def onto(self, state: TargetState) -> TargetState:
        """``state`` (usually a fresh TargetState of a target taken over) with these facts."""
        return replace(state, status=self.status, start_time=self.start_time,
                       status_change_time=self.status_change_time,
                       last_success=self.last_success, last_answer=self.last_answer,
                       seen=self.seen, ended_at=self.ended_at,
                       not_found_streak=self.not_found_streak,
                       resolved_task_id=self.resolved_task_id, event_time=self.event_time)

    @property
    def event_age(self) -> float | None:
        """Seconds from the last callback to the last answer, the age the owner planned its
        next poll with (``planning.state_interval``), 0 for a callback after that answer;
        None without a callback."""
        return max(0.0, self.last_answer - self.event_time) if self.event_time else None


def encode(state: SharedState) -> str:
    """One HASH value: a JSON array in field order (compact; ``MAX_ROW`` bytes at most in
    practice)."""
    return json.dumps([state.status, state.start_time, state.status_change_time,
                       state.last_success, state.last_answer, state.seen, state.ended_at,
                       state.not_found_streak, state.resolved_task_id, state.event_time])


def _time(value: object, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value):
        raise ValueError("not a time")
    return float(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ValueError("not a short string")
    return value


def decode(raw: bytes | str) -> SharedState:
    """One stored row; ValueError when it is not one this module wrote."""
    if len(raw) > MAX_ROW:
        raise ValueError("row too large")
    row = json.loads(raw)
    if not isinstance(row, list) or len(row) not in (9, 10):  # 9: written before event_time
        raise ValueError("not a state row")
    status, start, change, success, answer, seen, ended, streak, task = row[:9]
    event = _time(row[9], False) if len(row) == 10 else 0.0
    if not isinstance(seen, bool) or isinstance(streak, bool) or not isinstance(streak, int) \
            or not 0 <= streak < 2**31:
        raise ValueError("bad flags")
    return SharedState(_text(status), _time(start, True), _time(change, True),
                       _time(success, False) or 0.0, _time(answer, False) or 0.0, seen,
                       _time(ended, True), streak, _text(task), event or 0.0)


class RedisStateStore:
    """Thread-safe; every method may raise ``redis.RedisError`` (see :mod:`failover`)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._key = keys.state
        self._lock = threading.Lock()
        self.bad_rows = 0  # rows skipped since start

    def publish(self, target_id: str, state: TargetState) -> None:
        """Store the state of a target this replica just polled."""
        self._client.hset(self._key, target_id, encode(SharedState.of(state)))

    def publish_many(self, states: dict[str, TargetState]) -> None:
        """Write the shared part of each given state in one HSET (nothing for an empty mapping)."""
        if states:
            self._client.hset(self._key, mapping={i: encode(SharedState.of(s))
                                                  for i, s in states.items()})

    def get(self, target_id: str) -> SharedState | None:
        """The shared state of one target, or None when absent or unusable (skipped and counted)."""
        raw = self._client.hget(self._key, target_id)
        return None if raw is None else self._decode(raw)

    def all(self) -> dict[str, SharedState]:
        """Every readable row: what a replica serves for targets it does not own."""
        rows = self._client.hgetall(self._key)
        out = {}
        for ident, raw in rows.items():
            state = self._decode(raw)
            if state is not None:
                out[ident.decode() if isinstance(ident, bytes) else str(ident)] = state
        return out

    def forget(self, target_ids: list[str]) -> None:
        """Drop rows of targets that left the set (so the hash does not grow forever)."""
        if target_ids:
            self._client.hdel(self._key, *target_ids)

    def _decode(self, raw: bytes | str) -> SharedState | None:
        try:
            return decode(raw)
        except (ValueError, TypeError, RecursionError):
            with self._lock:
                self.bad_rows += 1
            log.error("shared state: skipping an unreadable row")
            return None
