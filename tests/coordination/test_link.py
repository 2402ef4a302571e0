"""The Redis client built from config: short timeouts, and the password never printed."""

from __future__ import annotations

import pytest
import redis

from trtc_exporter.clock import FakeClock
from trtc_exporter.config.coordination import CoordinationConfig
from trtc_exporter.coordination.link import Link, connect, describe
from trtc_exporter.secret import Secret

from .conftest import RedisProcess

PASSWORD = "hunter2-very-secret"


def test_the_password_is_not_in_reprs_or_errors(own_redis: RedisProcess) -> None:
    """repr of the client and the error of a refused password do not contain it."""
    own_redis.client().config_set("requirepass", "the-right-one")
    client = connect(CoordinationConfig(redis_url=own_redis.url), Secret(PASSWORD))
    assert PASSWORD not in repr(client) and PASSWORD not in repr(client.connection_pool)
    with pytest.raises(redis.RedisError) as caught:
        client.ping()
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(caught.value)


def test_describe_shows_host_and_port_only() -> None:
    """Logs name the server, not the URL."""
    assert describe("rediss://redis.internal:6380/2") == "redis.internal:6380"


def test_the_share_after_a_rejoin_follows_returning_members(redis_server: RedisProcess) -> None:
    """After a rejoin the shared budget is used in proportion to members back, then fully."""
    clock = FakeClock()
    link = Link(redis_server.client(), clock, retry_interval=1.0, hold=10.0)
    link.saw_members(3)
    link.failed(redis.ConnectionError())
    assert link.usable() is False  # the next probe is due one retry interval later
    clock.advance(1.0)
    assert link.usable() is True
    link.saw_members(1)
    assert link.share() == pytest.approx(1 / 3)
    link.saw_members(3)
    assert link.share() == 1.0
    link.saw_members(2)
    clock.advance(10.0)
    assert link.share() == 1.0
