"""The Redis client built from config: short timeouts, and the password never printed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
import redis

from trtc_exporter.clock import FakeClock
from trtc_exporter.config.coordination import CoordinationConfig
from trtc_exporter.config.model import Config
from trtc_exporter.coordination.link import UNSEEN_MEMBERS, Link, connect, describe, first_contact
from trtc_exporter.errors import ConfigError
from trtc_exporter.onlinecheck import redis_results
from trtc_exporter.secret import Secret

from .conftest import RedisProcess, free_port

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


def test_a_replica_that_never_saw_a_member_falls_back_to_half_the_limit(
        redis_server: RedisProcess) -> None:
    """Before its first heartbeat a replica assumes two members (the HA overlay's count), so
    replicas started while Redis is down do not each take the whole limit."""
    link = Link(redis_server.client(), FakeClock())
    assert link.known_members == UNSEEN_MEMBERS == 2
    link.saw_members(1)
    assert link.known_members == 1
    told = Link(redis_server.client(), FakeClock(), unseen=5)  # coordination.replicas: 5
    assert told.known_members == 5


def test_first_contact_reports_an_unreachable_redis_without_raising() -> None:
    """Connection refused keeps today's fallback: the error is returned, not raised."""
    config = CoordinationConfig(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    error = first_contact(connect(config, None), config)
    assert isinstance(error, redis.ConnectionError)


def test_first_contact_refuses_a_wrong_password_naming_the_field(own_redis: RedisProcess) -> None:
    """A password Redis refuses is a config error naming coordination.password_file."""
    own_redis.client().config_set("requirepass", "the-right-one")
    config = CoordinationConfig(redis_url=own_redis.url, password_file="/run/pw")
    with pytest.raises(ConfigError) as caught:
        first_contact(connect(config, Secret(PASSWORD)), config)
    assert str(caught.value).startswith("coordination.password_file: ")
    assert PASSWORD not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^coordination.password_file: .*requires a password"):
        unset = CoordinationConfig(redis_url=own_redis.url)
        first_contact(connect(unset, None), unset)


def test_first_contact_refuses_a_database_out_of_range(redis_server: RedisProcess) -> None:
    """A database number beyond the server's `databases` is a config error naming redis_url."""
    config = CoordinationConfig(redis_url=redis_server.url.rsplit("/", 1)[0] + "/4000")
    with pytest.raises(ConfigError, match=r"^coordination.redis_url: .*out of range"):
        first_contact(connect(config, None), config)


def test_first_contact_refuses_an_untrusted_certificate(tls_redis: RedisProcess) -> None:
    """A TLS Redis whose certificate the configured CA does not sign is a config error naming
    the TLS fields, not an outage."""
    config = CoordinationConfig(redis_url=f"rediss://127.0.0.1:{tls_redis.tls_port}/0")
    with pytest.raises(ConfigError, match=r"^coordination.ca_file: .*certificate verify failed"):
        first_contact(connect(config, None), config)



def test_the_check_command_names_the_refused_field(own_redis: RedisProcess,
                                                   tmp_path: Path) -> None:
    """`check` (onlinecheck.redis_results) fails the Redis row with the same line start-up
    gives for a refused password, not just the exception's class name."""
    own_redis.client().config_set("requirepass", "the-right-one")
    (tmp_path / "pw").write_text(PASSWORD, encoding="utf-8")
    config = SimpleNamespace(coordination=CoordinationConfig(
        redis_url=own_redis.url, password_file=str(tmp_path / "pw")))
    [result] = redis_results(cast(Config, config))
    assert not result.ok
    assert result.detail.startswith("coordination.password_file: Redis at 127.0.0.1:")
    assert PASSWORD not in result.detail and "coordination.password_file" in result.fix
