"""Parsing of the coordination: and accounts: blocks, one mistake per case, exact messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtc_exporter.config.accounts import AccountConfig, parse_accounts
from trtc_exporter.config.coordination import (
    CoordinationConfig,
    changed_fields,
    parse_coordination,
    read_password,
)
from trtc_exporter.errors import ConfigError, Errors


def coordination(raw: object) -> tuple[CoordinationConfig, list[str]]:
    errors = Errors()
    return parse_coordination(raw, errors), errors.lines


def test_absent_block_is_embedded_mode() -> None:
    """No coordination block: nothing enabled, no errors."""
    config, lines = coordination(None)
    assert (config.enabled, lines) == (False, [])


def test_full_block_parses() -> None:
    """Every field of a TLS setup lands in the dataclass; the TTL is three heartbeats."""
    config, lines = coordination({"redis_url": "rediss://redis:6380/1", "cluster": "prod-trtc",
                                  "password_file": "/run/secrets/redis", "heartbeat": "2s",
                                  "ca_file": "/ca.pem", "cert_file": "/c.pem",
                                  "key_file": "/k.pem", "replicas": 3})
    assert lines == []
    assert (config.tls, config.cluster, config.member_ttl, config.ca_file, config.replicas) == (
        True, "prod-trtc", 6.0, "/ca.pem", 3)
    assert coordination({"redis_url": "redis://r"})[0].replicas == 2


@pytest.mark.parametrize(("raw", "message"), [
    ({"redis_url": "http://redis:6379"},
     "coordination.redis_url: must be a redis:// or rediss:// URL with a host"),
    ({"redis_url": "redis://:hunter2@redis:6379"},
     "coordination.redis_url: must not contain a password; use coordination.password_file"),
    ({"redis_url": "redis://redis:99999"},
     "coordination.redis_url: must be a redis:// or rediss:// URL with a host"),
    ({"redis_url": "redis://redis/0?password=hunter2"},
     "coordination.redis_url: must not have a query or fragment (redis-py would let it override "
     "the password file, TLS and timeouts); use the coordination fields"),
    ({"redis_url": "rediss://redis/0?ssl_cert_reqs=none"},
     "coordination.redis_url: must not have a query or fragment (redis-py would let it override "
     "the password file, TLS and timeouts); use the coordination fields"),
    ({"redis_url": "redis://redis/0#x"},
     "coordination.redis_url: must not have a query or fragment (redis-py would let it override "
     "the password file, TLS and timeouts); use the coordination fields"),
    ({"redis_url": "redis://redis/abc"},
     "coordination.redis_url: the path must be empty or /<database number>, got '/abc'"),
    ({"redis_url": "redis://redis/0/1"},
     "coordination.redis_url: the path must be empty or /<database number>, got '/0/1'"),
    ({"redis_url": "redis://redis/" + "9" * 30},
     "coordination.redis_url: the path must be empty or /<database number>, got '/"
     + "9" * 30 + "'"),
    ({"redis_url": "redis://r", "cluster": "a b"},
     "coordination.cluster: must be 1-64 characters of [A-Za-z0-9._-], got 'a b'"),
    ({"redis_url": "redis://r", "heartbeat": "0s"},
     'coordination.heartbeat: must be > 0, got "0s"'),
    ({"redis_url": "redis://r", "heartbeat": "999ms"},
     "coordination.heartbeat: must be at least 1s, got '999ms'"),
    ({"redis_url": "redis://r", "password_file": ""},
     "coordination.password_file: must not be empty"),
    ({"redis_url": "redis://r", "ca_file": "/ca.pem"},
     "coordination.ca_file: needs a rediss:// redis_url"),
    ({"redis_url": "rediss://r", "cert_file": "/c.pem"},
     "coordination: cert_file and key_file must be set together"),
    ({"cluster": "prod"}, "coordination.redis_url: is required when coordination.cluster is set"),
    ({"redis_url": "redis://r", "insecure_skip_verify": "yes"},
     "coordination.insecure_skip_verify: must be true or false, got string"),
    ({"redis_url": "redis://r", "redis_urls": "x"}, "coordination.redis_urls: unknown field"),
    ({"redis_url": "redis://r", "replicas": 0}, "coordination.replicas: must be >= 1, got 0"),
    ({"redis_url": "redis://r", "replicas": "3"},
     "coordination.replicas: must be an integer, got string"),
])
def test_one_mistake_one_message(raw: dict[str, object], message: str) -> None:
    """Each mistake is reported once, by field path, with the exact text."""
    assert coordination(raw)[1] == [message]


def test_a_password_never_shows_in_the_error() -> None:
    """The URL with an inline password is refused without echoing it."""
    lines = coordination({"redis_url": "redis://user:hunter2@redis"})[1]
    assert "hunter2" not in "".join(lines)
    lines = coordination({"redis_url": "redis://redis/x?password=hunter2"})[1]
    assert lines and "hunter2" not in "".join(lines)


def test_a_heartbeat_of_one_second_is_the_least_accepted() -> None:
    """1s, the value the HA tests and benchmarks measure, is accepted; its TTL is 3 s."""
    config, lines = coordination({"redis_url": "redis://r", "heartbeat": "1s"})
    assert lines == [] and config.member_ttl == 3.0


@pytest.mark.parametrize("url", ["redis://redis", "redis://redis/", "redis://redis:6379/15",
                                 "rediss://user@redis:6380/0", "redis://[::1]:6379/2"])
def test_a_plain_url_with_a_database_number_is_accepted(url: str) -> None:
    """Host, port, user name and /<db> are what redis_url is for."""
    assert coordination({"redis_url": url})[1] == []


def test_password_file_is_read_as_a_secret(tmp_path: Path) -> None:
    """The file's text (newline dropped) comes back as a Secret that prints <secret>."""
    path = tmp_path / "pw"
    path.write_text("hunter2\n")
    secret = read_password(str(path))
    assert secret is not None and secret.reveal() == "hunter2" and "hunter2" not in repr(secret)


def test_unreadable_or_empty_password_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing or empty file names the field and the path."""
    with pytest.raises(ConfigError, match=r"coordination.password_file: cannot read .*/nope"):
        read_password(str(tmp_path / "nope"))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ConfigError, match=r"coordination.password_file: .* is empty"):
        read_password(str(tmp_path / "empty"))


def accounts(raw: object) -> tuple[tuple[AccountConfig, ...], list[str]]:
    errors = Errors()
    return parse_accounts(raw, errors), errors.lines


def test_accounts_parse() -> None:
    """Two accounts with their own credentials and limits."""
    parsed, lines = accounts([
        {"name": "main", "credentials": {"secret_id_file": "/i", "secret_key_file": "/k"},
         "rate_limit": 20},
        {"name": "other", "credentials": {"cvm_role": True}, "rate_limit": 10}])
    assert lines == []
    assert [(a.name, a.rate_limit) for a in parsed] == [("main", 20.0), ("other", 10.0)]
    assert parsed[0].credentials.secret_key_file == "/k" and parsed[1].credentials.cvm_role


@pytest.mark.parametrize(("raw", "message"), [
    ({"name": "main"}, "accounts: must be a list of accounts"),
    ([{"rate_limit": 5}], "accounts[0].name: is required"),
    ([{"name": "a b"}], "accounts[0].name: must be 1-64 characters of [A-Za-z0-9._-], got 'a b'"),
    ([{"name": "a"}, {"name": "a"}], "accounts[1].name: duplicate of accounts[0].name (a)"),
    ([{"name": "a", "rate_limit": 0}], "accounts[0].rate_limit: must be > 0, got 0"),
    ([{"name": "a", "credentials": {"secret_id_file": "/i"}}],
     "accounts[0].credentials: secret_id_file and secret_key_file must be set together"),
    ([{"name": "a", "credentials": {"token_file": "/t"}}],
     "accounts[0].credentials.token_file: needs secret_id_file and secret_key_file"),
    ([{"name": "a", "budget": 3}], "accounts[0].budget: unknown field"),
    (["main"], "accounts[0]: must be a mapping, got string"),
])
def test_account_mistakes(raw: object, message: str) -> None:
    """Each account mistake is reported once, by field path."""
    assert accounts(raw)[1] == [message]


def test_a_reload_names_each_changed_field() -> None:
    """Only the fields that differ are named, by path, in declaration order."""
    old = coordination({"redis_url": "redis://r", "heartbeat": "1s"})[0]
    new = coordination({"redis_url": "redis://r", "heartbeat": "2s", "cluster": "b"})[0]
    assert changed_fields(old, new) == ["coordination.cluster", "coordination.heartbeat"]
    assert changed_fields(old, old) == []
