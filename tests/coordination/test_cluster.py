"""The coordination wiring of the exporter (app.py + cluster.py) against a real redis-server:
ownership of the poller's targets, the shared dynamic set, takeover from shared state, budget
lanes per account. Fake clock for the exporter; no real waits."""

from __future__ import annotations

import signal
from dataclasses import replace
from pathlib import Path

import pytest
import redis
import yaml

from tests.conftest import ENDPOINT, SECRET_ID, SECRET_KEY, build_exporter
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.cli import main
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import parse_config
from trtc_exporter.coordination.cluster import Cluster
from trtc_exporter.coordination.failover import FailoverLimiter
from trtc_exporter.coordination.relay import decode
from trtc_exporter.generations import AI_TRANSCRIPTION
from trtc_exporter.polling.state import TargetState
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import RegistrationStoreError
from trtc_exporter.webhook.effects import Sentence, TaskStopped
from trtc_exporter.webhook.keys import KeyRing

from .conftest import RedisProcess, free_port

TARGETS = [{"task_id": f"task-{i:02d}"} for i in range(24)]


@pytest.fixture
def url(redis_server: RedisProcess, rdb: redis.Redis) -> str:
    """The shared server's URL, its database emptied by ``rdb``."""
    return redis_server.url


def _replicas(url: str, count: int, keyring: KeyRing | None = None,
              **extra: object) -> list[Exporter]:
    raw = {"targets": TARGETS, "coordination": {"redis_url": url, "cluster": "wiring"},
           "registration": {"enabled": True}, **extra}
    replicas = [build_exporter(raw, keyring=keyring) for _ in range(count)]
    for _ in range(2):  # the first round makes everyone a member, the second sees them all
        for replica in replicas:
            assert replica.cluster is not None
            replica.cluster.coordinator.tick()
            replica._members_changed(list(replica.cluster.coordinator.members()))
    return replicas


def _polled(replica: Exporter) -> set[str]:
    return {t.id for t in replica.poller.targets()}


def test_each_target_is_polled_by_exactly_one_replica(url: str) -> None:
    """Three replicas divide the target set: disjoint shares that add up to all of it."""
    replicas = _replicas(url, 3)
    shares = [_polled(r) for r in replicas]
    assert all(shares)
    assert sum(len(s) for s in shares) == len(TARGETS) == len(set().union(*shares))
    for replica in replicas:
        assert replica.cluster is not None
        assert replica.cluster.coordinator.targets_owned() == len(_polled(replica))


def test_a_webhook_discovery_on_one_replica_is_in_every_replica_s_set(url: str) -> None:
    """A task found by a callback on A lands in the shared store; B re-reads it."""
    a, b = _replicas(url, 2)
    found = Target(api=AI_TRANSCRIPTION, region="ap-guangzhou", task_id="found-by-callback",
                   sdk_app_id=1400000001, source="webhook")
    assert a._register_discovered(found, 3600.0)
    assert b.maintain_once()
    merged = {t.id: t.source for t in b.sources.merged()}
    assert merged[found.id] == "webhook"
    assert b._find_task(found.api, found.task_id) == found.key


def test_a_taken_over_target_starts_from_its_shared_state(url: str) -> None:
    """When B leaves, A polls B's targets starting from the status B published."""
    a, b = _replicas(url, 2)
    assert a.cluster is not None and b.cluster is not None
    mine = sorted(b.poller.targets(), key=lambda t: t.key)[0]
    b.store.put(replace(TargetState(mine), status="InProgress", seen=True,
                        last_poll=b.clock.time(), last_answer=b.clock.time(),
                        last_success=b.clock.time()))
    b.sync_once()
    a.sync_once()
    b.cluster.coordinator._membership.leave()
    a.cluster.coordinator.tick()
    a._members_changed(list(a.cluster.coordinator.members()))
    state = a.store.get(mine.key)
    assert state is not None and state.status == "InProgress"
    assert len(_polled(a)) == len(TARGETS)


def test_each_account_gets_its_own_budget_lane(url: str) -> None:
    """With accounts: a target of each account spends its own shared lane, account/action."""
    raw = {"api": {"endpoint": ENDPOINT, "max_retries": 0},
           "targets": [{"task_id": "m"}, {"task_id": "o", "account": "other"}],
           "coordination": {"redis_url": url, "cluster": "lanes"},
           "accounts": [{"name": "main"}, {"name": "other"}]}
    creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
    exporter = Exporter(parse_config(raw), creds, clock=FakeClock(auto_advance=True),
                        accounts={"main": creds, "other": creds})
    assert exporter.cluster is not None
    exporter.cluster.coordinator.tick()
    exporter._members_changed(list(exporter.cluster.coordinator.members()))
    lanes = {t.lane for t in exporter.poller.targets()}
    assert lanes == {"main/DescribeAITranscription", "other/DescribeAITranscription"}
    limiters = dict(exporter.budget.items())
    assert set(limiters) >= lanes
    assert all(isinstance(limiters[lane], FailoverLimiter) for lane in lanes)


def test_a_refused_password_stops_start_up_with_exit_2(
        own_redis: RedisProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A Redis that refuses the password ends start-up with exit 2 and a line naming
    coordination.password_file, instead of a replica running on its fallback forever."""
    own_redis.client().config_set("requirepass", "the-right-one")
    (tmp_path / "pw").write_text("not-the-right-one\n", encoding="utf-8")
    path = tmp_path / "c.yml"
    path.write_text(yaml.safe_dump({"targets": [], "coordination": {
        "redis_url": own_redis.url, "password_file": str(tmp_path / "pw")}}), encoding="utf-8")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        assert main(["--config.file", str(path)]) == 2
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    err = capsys.readouterr().err
    assert "coordination.password_file: Redis at 127.0.0.1:" in err
    assert "not-the-right-one" not in err


def test_an_unreachable_redis_starts_the_replica_on_its_fallback() -> None:
    """Connection refused at start-up is an outage, not a config error: the replica starts with
    its link down and assumes two members for its fallback share."""
    config = parse_config({"targets": [], "coordination": {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0"}}).coordination
    cluster = Cluster(config, None, FakeClock())
    try:
        assert cluster.link.up is False and cluster.link.outages == 1
        assert cluster.link.known_members == 2
    finally:
        cluster.stop()


def test_a_registration_refused_while_redis_is_down_is_counted(own_redis: RedisProcess) -> None:
    """Redis gone: the write is refused (the API's 503) and counted for the redis store."""
    [replica] = _replicas(own_redis.url, 1)
    task = Target(api=AI_TRANSCRIPTION, region="ap-guangzhou", task_id="late")
    own_redis.stop()
    with pytest.raises(RegistrationStoreError, match="Redis unreachable"):
        replica.register([task], 60.0)
    with pytest.raises(RegistrationStoreError):
        replica.register([task], 60.0)  # refused by the link that is known down
    assert replica.registry.get_sample_value("trtc_exporter_storage_errors_total",
                                             {"store": "redis"}) == 2
    assert replica.storage_errors.snapshot()["registrations"] == 0


def test_a_callback_for_another_replica_s_task_is_relayed_to_its_owner(url: str,
                                                                        rdb: redis.Redis) -> None:
    """B receives a sentence and a stop of a task A polls: B publishes them, A applies them."""
    a, b = _replicas(url, 2, keyring=KeyRing())
    assert a.events is not None and b.events is not None
    task = sorted(t.task_id for t in a.poller.targets() if t.task_id)[0]
    listener = rdb.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    listener.subscribe("trtc-exporter:{wiring}:events")
    when = a.clock.time()
    b.events.apply(Sentence(1400000001, task, AI_TRANSCRIPTION, when))
    b.events.apply(TaskStopped(1400000001, task, AI_TRANSCRIPTION, when))
    relayed = []
    for _ in range(20):  # get_message gives None for the ignored subscribe confirmation too
        message = listener.get_message(timeout=0.5)
        if message is not None and message["type"] == "message":
            relayed.append(decode(message["data"]))
        if len(relayed) == 2:
            break
    listener.close()
    assert [type(r[1]).__name__ for r in relayed if r] == ["Sentence", "TaskStopped"]
    for _, effect in filter(None, relayed):
        b.events.apply_relayed(effect)  # not polled by B: dropped there
        a.events.apply_relayed(effect)
    key = a.poller.find_task(AI_TRANSCRIPTION, task)
    assert key is not None
    state = a.store.get(key)
    assert state is not None and (state.sentences, state.status) == (1, "Stopped")
    assert all(s.sentences == 0 for s in b.store.snapshot())
