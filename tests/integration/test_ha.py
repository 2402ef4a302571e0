"""Three replicas sharing one budget, one target set and the work through a real Redis.

Real processes on 127.0.0.1: redis-server (started here, own port), the simulator (strict limit
per SecretId and action, arrival counted at the kernel's receive stamp: ``/_sim/stats``) and
three exporters with ``coordination:`` (heartbeat 1 s, so a member is gone after 3 s and the
takeover bound is 2 x 3 s). One cluster serves the tests of this module in order: the shared
budget, a registration, a replica killed with SIGKILL, Redis stopped for 30 s. Two accounts are
checked on a cluster of their own. Skipped only when redis-server is not installed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.coordination.conftest import REDIS_SERVER, RedisProcess
from tests.integration.capture import PostCapture, max_in_window, tshark_available
from tests.integration.harness import SECRET_ID, SECRET_KEY, Exporter, Simulator, dump, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(REDIS_SERVER).exists(), reason="redis-server is not installed"),
]
APP = 1400000001
TARGETS = 150
LIMIT = 20
HEARTBEAT = 1.0
TTL = 3 * HEARTBEAT
TOKEN = "ha-registration-token"
SECOND_ID = "AKIDintegration00000000000000000002"
SECOND_KEY = "integrationSECRETkey0000000000000002"


def _tasks(prefix: str, count: int) -> list[dict[str, Any]]:
    return [{"task_id": f"{prefix}-{i:03d}", "sdk_app_id": APP, "start_offset": -10,
             "phases": {"idle": 0, "preparing": 0, "in_progress": "forever"}}
            for i in range(count)]  # fmt: skip


def _config(sim: Simulator, redis_url: str, tmp: Path, targets: list[dict[str, Any]],
            **extra: Any) -> dict[str, Any]:
    token = tmp / "token"
    token.write_text(TOKEN)
    return {"api": {"endpoint": sim.url, "rate_limit": LIMIT, "timeout": "3s"},
            "poll_interval": "5s", "targets": targets,
            "registration": {"enabled": True, "bearer_token_file": str(token)},
            "coordination": {"redis_url": redis_url, "cluster": "it",
                             "heartbeat": f"{HEARTBEAT:g}s"}, **extra}


class Cluster:
    """Redis, the simulator and N exporters, each in its own directory."""

    def __init__(self, tmp: Path, tasks: list[dict[str, Any]], config: dict[str, Any] | None,
                 replicas: int, credentials: list[dict[str, str]] | None = None) -> None:
        self.redis = RedisProcess(tmp)
        self.redis.start()
        scenario: dict[str, Any] = {"rate_limit": LIMIT, "tasks": tasks}
        if credentials:
            scenario["credentials"] = credentials
        self.sim = Simulator(tmp, scenario)
        self.tmp = tmp
        self.replicas: list[Exporter] = []
        self.config = config or _config(self.sim, self.redis.url, tmp,
                                        [{"task_id": t["task_id"]} for t in tasks])
        for i in range(replicas):
            self.add(f"r{i}")

    def add(self, name: str) -> Exporter:
        directory = self.tmp / name
        directory.mkdir()
        exporter = Exporter(directory, self.config)
        self.replicas.append(exporter)
        return exporter

    def live(self) -> list[Exporter]:
        return [r for r in self.replicas if r.proc.poll() is None]

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.sim.stop()
        self.redis.stop()

    def dump(self) -> str:
        return dump(self.sim, *self.replicas)


def _measure(sim: Simulator, seconds: float) -> dict[str, Any]:
    sim.control("POST", "reset_stats")
    time.sleep(seconds)
    return sim.control("GET", "stats")


def _polled(replica: Exporter) -> float:
    """Targets this replica polls (all sources)."""
    return sum(v for n, _, v in replica.samples() if n == "trtc_exporter_targets")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("ha"), _tasks("ha", TARGETS), None, replicas=3)
    try:
        yield c
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()


def test_three_replicas_share_one_budget(cluster: Cluster) -> None:
    """150 targets at 5 s need 30 req/s: together the replicas use >= 95 % of 20, never more."""
    wait_for(lambda: sum(_polled(r) for r in cluster.replicas) == TARGETS, 10,
             "the targets to be divided")
    time.sleep(3)
    seconds = 10.0
    if tshark_available():  # the capture is the referee, as in test_budget_capture.py
        with PostCapture(cluster.sim.port) as capture:
            stats = _measure(cluster.sim, seconds)
        assert capture.dropped == 0
        peak = max_in_window(capture.times)
        assert stats["max_in_window"] <= peak + 1  # +1: a request at a window edge
    else:
        stats = _measure(cluster.sim, seconds)
        peak = stats["max_in_window"]
    used = stats["requests_total"] / (LIMIT * seconds)
    print(f"3 replicas: peak {peak} in 1 s (simulator {stats['max_in_window']}), use {used:.1%}")
    assert peak <= LIMIT, stats["windows"]
    assert stats["throttled_total"] == 0
    assert used >= 0.95, stats["requests_total"]
    owned = [r.value("trtc_exporter_targets_owned") for r in cluster.replicas]
    assert sum(v or 0 for v in owned) == TARGETS and all(v and v > 0 for v in owned), owned


def test_a_registration_is_polled_once_and_served_by_all(cluster: Cluster) -> None:
    """A target registered on replica A is polled by one replica and shown by all three."""
    cluster.sim.control("POST", "tasks", _tasks("reg", 1)[0])
    resp = requests.post(cluster.replicas[0].url + "/api/v1/targets",
                         json={"task_id": "reg-000"},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert resp.status_code == 200, resp.text
    wait_for(lambda: all(r.statuses().get("reg-000") == "InProgress" for r in cluster.replicas),
             15, "every replica to show the registered task")
    api = [r.value("trtc_exporter_targets", source="api") for r in cluster.replicas]
    assert sum(v or 0 for v in api) == 1, api


def test_a_killed_replica_s_targets_are_taken_over(cluster: Cluster) -> None:
    """SIGKILL one replica: survivors own all targets within 2 x TTL, never two owners at once."""
    victim = cluster.replicas[2]
    total = sum(_polled(r) for r in cluster.replicas)
    victim.proc.kill()
    victim.proc.wait()
    killed = time.monotonic()
    survivors = cluster.replicas[:2]
    took = None
    while time.monotonic() - killed < 2 * TTL + 5:
        polled = [_polled(r) for r in survivors]
        assert sum(polled) <= total, polled  # no target polled by two live replicas
        if sum(polled) == total:
            took = time.monotonic() - killed
            break
        time.sleep(0.2)
    print(f"takeover after {took} s (bound {2 * TTL} s)")
    assert took is not None and took <= 2 * TTL, took
    members = [r.value("trtc_exporter_coordination_members") for r in survivors]
    assert members == [2.0, 2.0]
    # within a stretched interval (30 req/s of demand on 20) every target answered again
    wait_for(lambda: all(set(r.statuses().values()) == {"InProgress"} for r in survivors), 15,
             "every target to be polled by a survivor")


def test_redis_outage_keeps_polling_within_the_budget(cluster: Cluster) -> None:
    """Redis down 30 s: no crash, no 500, budget kept, up=0 then rejoin without a restart."""
    survivors = cluster.live()
    cluster.sim.control("POST", "reset_stats")
    cluster.redis.stop()
    stopped = time.monotonic()
    while time.monotonic() - stopped < 30:
        for replica in survivors:
            assert requests.get(replica.url + "/metrics", timeout=5).status_code == 200
            assert replica.proc.poll() is None
        time.sleep(1)
    assert all(r.value("trtc_exporter_coordination_up") == 0 for r in survivors)
    during = cluster.sim.control("GET", "stats")
    cluster.sim.control("POST", "reset_stats")
    with contextlib.ExitStack() as stack:  # the capture referees the rejoin transition
        capture = stack.enter_context(PostCapture(cluster.sim.port)) if tshark_available() \
            else None
        cluster.redis.start()
        started = time.monotonic()
        wait_for(lambda: all(r.value("trtc_exporter_coordination_up") == 1 for r in survivors),
                 15, "the replicas to rejoin")
        rejoin = time.monotonic() - started
        time.sleep(6)
        after = cluster.sim.control("GET", "stats")
    peak = after["max_in_window"]
    if capture is not None:
        assert capture.dropped == 0
        peak = max_in_window(capture.times)
    print(f"outage: peak {during['max_in_window']}, {during['requests_total']} requests in "
          f"30 s; rejoin after {rejoin:.1f} s; peak across the rejoin {peak} "
          f"(simulator {after['max_in_window']})")
    assert during["max_in_window"] <= LIMIT and during["throttled_total"] == 0
    # kept polling on the fallback share once its heartbeat entry expired (TTL after the last
    # beat, + one span: until then the others may count it as live, docs/ha.md)
    assert during["requests_total"] >= 0.9 * LIMIT * (30 - TTL - 1.02)
    assert peak <= LIMIT, after["windows"]
    assert after["throttled_total"] == 0
    resp = requests.post(survivors[0].url + "/api/v1/targets", json={"task_id": "reg-late"},
                         headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert resp.status_code == 200, resp.text


def test_registration_is_refused_while_redis_is_down(tmp_path: Path) -> None:
    """With Redis down, POST /api/v1/targets answers 503 (nothing acknowledged is lost)."""
    c = Cluster(tmp_path, _tasks("down", 2), None, replicas=1)
    try:
        c.redis.stop()
        resp = requests.post(c.replicas[0].url + "/api/v1/targets", json={"task_id": "x-1"},
                             headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert resp.status_code == 503, resp.text
        assert "Redis unreachable" in resp.text
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()


def test_two_accounts_each_get_their_own_budget(tmp_path: Path) -> None:
    """Two accounts (two SecretIds): each uses its own full limit, neither exceeds it."""
    keys = {"a": (SECRET_ID, SECRET_KEY), "b": (SECOND_ID, SECOND_KEY)}
    accounts = []
    for name, (sid, skey) in keys.items():
        (tmp_path / f"{name}.id").write_text(sid)
        (tmp_path / f"{name}.key").write_text(skey)
        accounts.append({"name": name, "rate_limit": LIMIT, "credentials": {
            "secret_id_file": str(tmp_path / f"{name}.id"),
            "secret_key_file": str(tmp_path / f"{name}.key")}})
    tasks = _tasks("acc", 2 * TARGETS)
    targets = [{"task_id": t["task_id"], "account": "a" if i % 2 else "b"}
               for i, t in enumerate(tasks)]
    c = Cluster(tmp_path, tasks, None, replicas=0, credentials=[
        {"secret_id": sid, "secret_key": skey} for sid, skey in keys.values()])
    try:
        c.config = _config(c.sim, c.redis.url, tmp_path, targets, accounts=accounts)
        c.add("r0")
        c.add("r1")
        time.sleep(3)
        stats = _measure(c.sim, 8)
        windows = {w["secret_id"]: w for w in stats["windows"]}
        print({sid: w["max_in_window"] for sid, w in windows.items()}, stats["requests_total"])
        assert set(windows) == {SECRET_ID, SECOND_ID}
        # one capture cannot tell the SecretIds apart: the simulator's strict limiter per
        # SecretId is the referee (it refused nothing, admitted at most LIMIT per second)
        assert all(w["max_admitted_in_window"] <= LIMIT and w["throttled"] == 0
                   for w in windows.values())
        assert stats["throttled_total"] == 0
        assert stats["requests_total"] >= 2 * LIMIT * 8 * 0.9
        labels = {lab.get("account") for n, lab, _ in c.replicas[0].samples()
                  if n == "trtc_exporter_budget_rate"}
        assert labels == {"a", "b"}
    except BaseException:
        print(c.dump())
        raise
    finally:
        c.stop()
