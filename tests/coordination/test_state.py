"""The shared last state per target against a real redis-server."""

from __future__ import annotations

import json
from dataclasses import replace

import redis

from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.state import RedisStateStore, SharedState, encode
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import Target

T1 = Target(api="ai_transcription", region="ap-guangzhou", task_id="t-1")


def polled() -> TargetState:
    return TargetState(T1, status="InProgress", start_time=1000.0, last_success=1100.0,
                       last_answer=1100.0, status_change_time=1010.0, seen=True,
                       resolved_task_id="t-1", not_found_streak=0, attempts=2)


def test_a_replica_taking_over_starts_from_the_last_status(rdb: redis.Redis) -> None:
    """The new owner's fresh record gets status, start, change and success times."""
    RedisStateStore(rdb, Keys("t")).publish(T1.id, polled())
    shared = RedisStateStore(rdb, Keys("t")).get(T1.id)
    assert shared is not None
    taken = shared.onto(TargetState(T1))
    assert (taken.status, taken.start_time, taken.status_change_time, taken.last_success,
            taken.seen) == ("InProgress", 1000.0, 1010.0, 1100.0, True)
    assert taken.attempts == 0  # per-poll details stay with the replica that polled


def test_the_callback_time_travels_with_the_state(rdb: redis.Redis) -> None:
    """The owner's last callback time reads back, with its age at the last answer; a row
    written without it reads as never confirmed."""
    store = RedisStateStore(rdb, Keys("t"))
    store.publish(T1.id, replace(polled(), event_time=1090.0))
    shared = store.get(T1.id)
    assert shared is not None and shared.onto(TargetState(T1)).event_time == 1090.0
    assert shared.event_age == 10.0
    store.publish(T1.id, replace(polled(), event_time=1105.0))  # heard after the answer
    later = store.get(T1.id)
    assert later is not None and later.event_age == 0.0
    rdb.hset(Keys("t").state, T1.id, json.dumps(json.loads(encode(shared))[:9]))
    old = store.get(T1.id)
    assert old is not None and (old.event_time, old.event_age) == (0.0, None)


def test_bad_rows_are_skipped_and_counted(rdb: redis.Redis) -> None:
    """Wrong shapes, types, sizes and NaN are skipped; the good row is served."""
    store = RedisStateStore(rdb, Keys("t"))
    store.publish(T1.id, polled())
    good = json.loads(rdb.hget(Keys("t").state, T1.id) or b"")
    bad = {"short": json.dumps(good[:3]), "nan": json.dumps([*good[:3], float("nan"),
                                                            *good[4:]]),
           "huge": json.dumps([*good[:8], "x" * 2000]), "flag": json.dumps(
               [*good[:5], "yes", *good[6:]]), "junk": "{"}
    rdb.hset(Keys("t").state, mapping=bad)
    assert list(store.all()) == [T1.id]
    assert store.bad_rows == len(bad)


def test_long_texts_are_cut_on_write(rdb: redis.Redis) -> None:
    """A status or task id longer than the bound is stored cut, so it reads back."""
    store = RedisStateStore(rdb, Keys("t"))
    store.publish(T1.id, TargetState(T1, resolved_task_id="x" * 500))
    shared = store.get(T1.id)
    assert isinstance(shared, SharedState) and len(shared.resolved_task_id) == 128


def test_forget_drops_departed_targets(rdb: redis.Redis) -> None:
    """Rows of targets that left the set are deleted."""
    store = RedisStateStore(rdb, Keys("t"))
    store.publish_many({T1.id: polled(), "other": polled()})
    store.forget(["other"])
    assert list(store.all()) == [T1.id]
