"""The shared target store against a real redis-server."""

from __future__ import annotations

import redis

from tests.conftest import RedisProcess
from trtc_exporter.clock import FakeClock
from trtc_exporter.coordination.cluster import SharedRegistrations
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.link import Link
from trtc_exporter.coordination.targets import RedisTargetStore
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import Registered
from trtc_exporter.targets.targetset import TargetSet

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


def test_restore_writes_back_only_what_is_absent(rdb: redis.Redis) -> None:
    """After a loss, restore puts back missing rows with their expiry, never over newer ones."""
    s = store(rdb)
    newer = Registered(T1, 200.0, None)
    s.upsert([newer])
    before = s.version()
    assert s.restore([Registered(T1, 100.0, 300.0), Registered(T2, 101.0, 500.0)], 7) == 1
    assert sorted(s.load(), key=lambda r: r.target.task_id) == [
        newer, Registered(T2, 101.0, 500.0)]
    assert s.version() == 8  # past every version seen before the loss
    assert s.expire(now=600.0) == [T2.id]  # the restored expiry is indexed
    assert s.restore([newer], 0) == 0 and s.version() == 10 > before


def shared(rdb: redis.Redis) -> SharedRegistrations:
    return SharedRegistrations(store(rdb), Link(rdb, FakeClock()))


def test_a_replica_writes_back_the_set_redis_lost(rdb: redis.Redis) -> None:
    """Redis restarted empty: the counter went back, so the last loaded set is written back
    (answered-2xx registrations survive) and every replica loads it again."""
    a, b = shared(rdb), shared(rdb)
    a.upsert([Registered(T1, 100.0, None), Registered(T2, 101.0, 500.0)])
    assert len(a.load()) == 2 and len(b.load()) == 2
    rdb.flushdb()  # what a Redis without persistence looks like after a restart
    assert a.changed()
    assert sorted(r.target.task_id for r in a.load()) == ["t-1", "t-2"]
    assert b.changed()
    assert sorted(r.target.task_id for r in b.load()) == ["t-1", "t-2"]
    assert rdb.hlen(Keys("t").targets) == 2


def test_a_fresh_replica_restores_nothing(rdb: redis.Redis) -> None:
    """A replica that never loaded a set has nothing to write back, and a growing counter is
    never taken for a loss."""
    a = shared(rdb)
    assert a.load() == []
    a.upsert([Registered(T1, 100.0, None)])
    assert [r.target.task_id for r in a.load()] == ["t-1"]
    assert a.delete([T1.id]) == 1
    assert a.load() == []
    assert rdb.hlen(Keys("t").targets) == 0


def test_every_replica_that_loaded_a_set_writes_it_back(rdb: redis.Redis) -> None:
    """B registered one more than A had loaded when Redis lost its data: B's write-back keeps
    it, whoever noticed first (the epoch tells every replica, not the counter)."""
    a, b = shared(rdb), shared(rdb)
    a.upsert([Registered(T1, 100.0, None)])
    a.load()
    b.load()
    b.upsert([Registered(T2, 101.0, None)])
    assert len(b.load()) == 2  # A has not re-read yet
    rdb.flushdb()
    assert [r.target.task_id for r in a.load()] == ["t-1"]  # A wrote back what it knew
    assert b.changed()
    assert sorted(r.target.task_id for r in b.load()) == ["t-1", "t-2"]
    assert sorted(r.target.task_id for r in a.load()) == ["t-1", "t-2"]


def test_a_deletion_after_a_handled_loss_stays_deleted(rdb: redis.Redis) -> None:
    """Once a loss is written back the new epoch is known: later deletions are not undone."""
    a = shared(rdb)
    a.upsert([Registered(T1, 100.0, None), Registered(T2, 101.0, None)])
    a.load()
    rdb.flushdb()
    assert len(a.load()) == 2
    assert a.delete([T2.id]) == 1
    assert [r.target.task_id for r in a.load()] == ["t-1"]
    assert [r.target.task_id for r in a.load()] == ["t-1"]


def test_a_failed_read_keeps_the_last_loaded_set(own_redis: RedisProcess) -> None:
    """Redis failing between two loads does not empty this replica's registrations."""
    client = own_redis.client()
    a = SharedRegistrations(RedisTargetStore(client, Keys("t")), Link(client, FakeClock()))
    a.upsert([Registered(T1, 100.0, None)])
    assert len(a.load()) == 1
    own_redis.stop()
    assert [r.target.task_id for r in a.load()] == ["t-1"]


def test_a_ttl_ending_while_redis_is_down_drops_the_target_without_failing(
        own_redis: RedisProcess) -> None:
    """The expiry cannot reach Redis: the target still leaves this replica's set, and the
    upkeep does not raise (it used to, every second, for the whole outage)."""
    client, clock = own_redis.client(), FakeClock()
    shared_set = SharedRegistrations(RedisTargetStore(client, Keys("t")), Link(client, clock))
    targets = TargetSet(clock, max_targets=10)
    targets.attach(shared_set)
    targets.register([T1], ttl=60.0)
    assert [t.task_id for t in targets.merged()] == ["t-1"]
    own_redis.stop()
    clock.advance(61.0)
    assert targets.expire() == 1
    assert targets.merged() == []
