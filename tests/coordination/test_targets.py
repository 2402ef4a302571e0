"""The shared target store against a real redis-server."""

from __future__ import annotations

import redis

from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.targets import RedisTargetStore
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import Registered

T1 = Target(api="ai_transcription", region="ap-guangzhou", task_id="t-1", source="api")
T2 = Target(api="ai_transcription", region="ap-guangzhou", task_id="t-2",
            labels=(("team", "a"),), source="api")


def store(rdb: redis.Redis) -> RedisTargetStore:
    return RedisTargetStore(rdb, Keys("t"))


def test_an_upsert_on_one_replica_is_loaded_by_another(rdb: redis.Redis) -> None:
    """A registration written through one client is read back whole through another."""
    store(rdb).upsert([Registered(T1, 100.0, None), Registered(T2, 101.0, 500.0)])
    loaded = sorted(store(rdb).load(), key=lambda r: r.target.task_id)
    assert loaded == [Registered(T1, 100.0, None), Registered(T2, 101.0, 500.0)]
    assert loaded[1].target.labels == (("team", "a"),)


def test_every_change_bumps_the_version(rdb: redis.Redis) -> None:
    """Upsert, delete and expire each change the version; a no-op delete does not."""
    s = store(rdb)
    v0 = s.version()
    s.upsert([Registered(T1, 1.0, 50.0)])
    v1 = s.version()
    assert s.delete(["nope"]) == 0
    assert s.version() == v1 > v0
    s.upsert([Registered(T2, 1.0, None)])
    assert s.expire(now=60.0) == [T1.id]
    assert s.delete([T2.id]) == 1
    assert s.version() == v1 + 3
    assert s.load() == []


def test_a_refresh_without_ttl_clears_the_expiry(rdb: redis.Redis) -> None:
    """Re-registering without a TTL keeps the target past its former expiry."""
    s = store(rdb)
    s.upsert([Registered(T1, 1.0, 50.0)])
    s.upsert([Registered(T1, 1.0, None)])
    assert s.expire(now=60.0) == []
    assert [r.target for r in s.load()] == [T1]


def test_a_bad_row_is_skipped_and_counted(rdb: redis.Redis) -> None:
    """A foreign or broken row does not hide the good ones."""
    s = store(rdb)
    s.upsert([Registered(T1, 1.0, None)])
    rdb.hset(Keys("t").targets, mapping={"x": "{not json", "y": "[1]", "z": "[" * 20000})
    assert [r.target for r in s.load()] == [T1]
    assert s.bad_rows == 3


def test_changes_are_announced_on_the_channel(rdb: redis.Redis) -> None:
    """Subscribers hear of an upsert without polling the version."""
    pubsub = rdb.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(Keys("t").targets_channel)
    pubsub.get_message(timeout=1.0)
    store(rdb).upsert([Registered(T1, 1.0, None)])
    message = pubsub.get_message(timeout=1.0)
    pubsub.close()
    assert message is not None and message["data"] == b"upsert"
