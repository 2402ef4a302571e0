"""Three limiter clients hammer one (account, action) on real time: strict and well used."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from trtc_exporter.clock import SystemClock
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.limiter import SharedRateLimiter
from trtc_exporter.coordination.link import Link, no_retry

from .conftest import RedisProcess, free_port

LIMIT = 20
RUN = 3.0


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """The most grants in any closed window of ``window`` seconds."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] < t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


@pytest.mark.integration
def test_three_clients_stay_within_the_limit_and_use_it(redis_server: RedisProcess) -> None:
    """Max grants in any 1 s window <= 20 (Redis server times) and >= 95 % of 20/s used."""
    redis_server.client().flushdb()
    grants: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + RUN

    def hammer() -> None:
        client = redis_server.client()
        limiter = SharedRateLimiter(client, Keys("h"), "main", "DescribeAITranscription",
                                    LIMIT, SystemClock())
        while time.monotonic() < stop:
            granted = limiter.take().time
            with lock:
                grants.append(granted)
        client.close()

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants.sort()
    rate = (len(grants) - 1) / (grants[-1] - grants[0])
    print(f"grants={len(grants)} max_1s={max_in_window(grants)} rate={rate:.2f}/s "
          f"use={rate / LIMIT:.1%}")
    assert max_in_window(grants) <= LIMIT
    assert rate >= 0.95 * LIMIT


@pytest.mark.integration
def test_link_probe_fails_fast_when_nothing_listens() -> None:
    """A dead Redis costs one short timeout, then usable() is False without another try."""
    client = redis.Redis(port=free_port(), socket_timeout=0.5, socket_connect_timeout=0.5,
                         retry=no_retry())
    link = Link(client, SystemClock(), retry_interval=0.0)
    link.failed(redis.ConnectionError())
    began = time.monotonic()
    assert link.usable() is False
    assert time.monotonic() - began < 1.0
