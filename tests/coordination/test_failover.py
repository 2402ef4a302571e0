"""Redis stopped mid-run: the fallback takes over without an exception, then the replica rejoins."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from trtc_exporter.clock import FakeClock, SystemClock
from trtc_exporter.coordination.coordinator import Coordinator
from trtc_exporter.coordination.failover import FailoverLimiter
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.limiter import SharedRateLimiter
from trtc_exporter.coordination.link import Link
from trtc_exporter.coordination.membership import Membership

from .conftest import RedisProcess
from .test_hammer import max_in_window


@pytest.mark.integration
def test_killing_redis_falls_back_and_rejoins(own_redis: RedisProcess) -> None:
    """No exception escapes, the budget holds across both switches, and the replica rejoins."""
    clock, keys = SystemClock(), Keys("k")
    client = own_redis.client()
    link = Link(client, clock, retry_interval=0.2, hold=1.0)
    Membership(own_redis.client(), keys, "other", 15.0, clock).beat()
    # our own entry lives 0.5 s: local grants wait until it expired (the others stop counting
    # us), so a long TTL would leave the 2 s outage without any local grant to check
    coordinator = Coordinator(link, Membership(client, keys, "me", 0.5, clock), clock, 0.2)
    assert coordinator.tick() == ["me", "other"]
    shared = SharedRateLimiter(client, keys, "main", "DescribeAITranscription", 20.0, clock)
    limiter = FailoverLimiter(shared, link, clock)
    grants: list[tuple[float, bool]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        try:
            while not stop.is_set():
                limiter.acquire()
                grants.append((time.monotonic(), link.up))
        except BaseException as exc:  # the test fails on anything escaping
            errors.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    time.sleep(1.0)
    own_redis.stop()
    killed = time.monotonic()
    time.sleep(2.0)
    assert coordinator.up() == 0.0 and coordinator.member_count() == 2.0
    coordinator.tick()  # a heartbeat while down changes nothing and raises nothing
    own_redis.start()
    restarted = time.monotonic()
    while not link.up and time.monotonic() - restarted < 5:
        time.sleep(0.05)
    rejoined = time.monotonic() - restarted
    time.sleep(1.5)
    stop.set()
    thread.join(5)
    assert errors == []
    assert link.up and link.outages == 1
    times = [t for t, _ in grants]
    offline = [t for t, up in grants if not up and killed + 1.02 < t < restarted]
    print(f"grants={len(times)} max_1s={max_in_window(times)} "
          f"fallback_rate={len(offline) / (restarted - killed - 1.02):.1f}/s "
          f"rejoin={rejoined:.2f}s")
    assert max_in_window(times) <= 20
    # quiet span: no local grant within one window of the failure the link saw (measured from
    # the link's own time: ``killed`` is taken after stop() returned, later than the failure
    # under load, and a shared grant made just before the failure may be recorded after it)
    assert not [t for t, up in grants if not up and t < link.down_since + 1.0]
    assert 0 < len(offline) <= 10 * (restarted - killed - 1.02) + 1  # 1/N with N = 2
    assert rejoined < 1.0


def _cut_off(server: RedisProcess, clock: FakeClock, keys: Keys
             ) -> tuple[redis.Redis, Link, FailoverLimiter]:
    """A failover limiter on an empty database whose link just saw Redis fail (quiet 1.1 s)."""
    client = server.client()
    client.flushdb()
    link = Link(client, clock, retry_interval=1.0, hold=3.0, quiet=1.1)
    shared = SharedRateLimiter(client, keys, "", "DescribeAITranscription", 20.0, clock,
                               fake_now=True)
    limiter = FailoverLimiter(shared, link, clock)
    link.failed(redis.ConnectionError())
    return client, link, limiter


def test_after_a_rejoin_the_shared_limiter_waits_one_quiet_span(redis_server: RedisProcess
                                                                  ) -> None:
    """The first shared grant after a rejoin comes one span after it, so the replica's last
    local grants (made before the rejoin) never share a window with its shared ones."""
    clock = FakeClock(auto_advance=True)
    _, link, limiter = _cut_off(redis_server, clock, Keys("q"))
    limiter.acquire()  # a local grant, one span after the failure (no probe due yet)
    assert link.up is False
    last_local = clock.monotonic()
    limiter.acquire()  # the probe is due: rejoin, then the shared limiter
    assert link.up is True
    assert clock.monotonic() >= last_local + 1.1 - 1e-6


def test_the_heartbeat_after_a_rejoin_waits_until_the_link_settled(redis_server: RedisProcess
                                                                     ) -> None:
    """Members count a rejoined replica as live only once its local grants are a window old."""
    clock, keys = FakeClock(auto_advance=True), Keys("h")
    client = redis_server.client()
    client.flushdb()
    link = Link(client, clock, retry_interval=1.0, hold=3.0, quiet=1.1)
    coordinator = Coordinator(link, Membership(client, keys, "me", 3.0, clock, fake_now=True),
                              clock, 1.0)
    link.failed(redis.ConnectionError())
    clock.advance(1.0)
    before = clock.monotonic()
    assert coordinator.tick() == ["me"]
    assert clock.monotonic() - before >= 1.1 - 1e-6
    assert link.settled_in() == 0.0


def test_a_local_token_taken_across_a_rejoin_is_dropped(redis_server: RedisProcess) -> None:
    """A local grant that completes after Redis came back is not used: the request waits for
    the quiet span and a shared grant, so it is counted in the shared window."""
    clock, keys = FakeClock(), Keys("d")
    client, link, limiter = _cut_off(redis_server, clock, keys)
    returned: list[float] = []
    waiter = threading.Thread(target=lambda: (limiter.acquire(),
                                              returned.append(clock.monotonic())))
    waiter.start()
    assert clock.await_sleepers(1)  # the first local grant waits one span after the failure
    clock.advance(1.0)
    assert link.usable()  # a probe from another thread finds Redis back: rejoined now
    rejoined = clock.monotonic()
    clock.advance(0.05)  # the local wait ends after the rejoin: its token must be dropped
    assert clock.await_sleepers(1)
    clock.advance(1.1)
    waiter.join(5)
    assert returned and returned[0] >= rejoined + 1.1 - 1e-6
    assert client.zcard(keys.limiter("", "DescribeAITranscription", "started")) == 1


def test_a_write_report_lost_with_redis_never_raises(own_redis: RedisProcess) -> None:
    """The report runs inside the HTTP write: Redis failing there marks the link down, it does
    not fail the request."""
    clock, keys = FakeClock(auto_advance=True), Keys("w")
    client = own_redis.client()
    link = Link(client, clock, retry_interval=1.0, hold=3.0)
    shared = SharedRateLimiter(client, keys, "", "DescribeAITranscription", 20.0, clock,
                               fake_now=True, confirm_sends=True)
    limiter = FailoverLimiter(shared, link, clock, confirm_sends=True)
    limiter.acquire()
    own_redis.stop()
    limiter.sent()
    assert link.up is False


def test_a_cut_off_replica_waits_until_the_others_stop_counting_it(
        redis_server: RedisProcess) -> None:
    """Until its heartbeat entry expires the others may spend the whole limit between them, so
    the first local grant comes one span after the lease, not one span after the failure."""
    clock, keys = FakeClock(auto_advance=True), Keys("l")
    client = redis_server.client()
    client.flushdb()
    link = Link(client, clock, retry_interval=100.0, hold=3.0)
    coordinator = Coordinator(link, Membership(client, keys, "me", 3.0, clock, fake_now=True),
                              clock, 1.0)
    coordinator.tick()
    beat = clock.monotonic()
    shared = SharedRateLimiter(client, keys, "", "DescribeAITranscription", 20.0, clock,
                               fake_now=True)
    limiter = FailoverLimiter(shared, link, clock)
    clock.advance(0.5)
    link.failed(redis.ConnectionError())
    limiter.acquire()
    assert link.up is False
    assert clock.monotonic() >= beat + 3.0 + 1.02 - 1e-6


def test_a_failed_heartbeat_extends_the_lease(own_redis: RedisProcess) -> None:
    """A beat that fails may still have reached Redis: the lease counts from the attempt."""
    clock, keys = FakeClock(), Keys("f")
    link = Link(own_redis.client(), clock, retry_interval=100.0)
    coordinator = Coordinator(
        link, Membership(own_redis.client(), keys, "me", 3.0, clock, fake_now=True), clock, 1.0)
    own_redis.stop()
    clock.advance(5.0)
    coordinator.tick()
    assert link.up is False
    assert link.lease_end == pytest.approx(clock.monotonic() + 3.0)


def test_the_shared_limiter_never_grants_ahead(redis_server: RedisProcess) -> None:
    """A shared start is granted only to the thread that sends it (its write report goes to
    Redis from that thread), so the poller's dispatcher gets no token and no slot time."""
    _, _, limiter = _cut_off(redis_server, FakeClock(1000.0), Keys("t"))
    assert limiter.grant_ahead() is None
    assert limiter.free_in() is None
