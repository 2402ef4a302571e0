"""The ``coordination:`` config block, parsed into a frozen dataclass (``accounts:`` is in
``accounts.py``).

Errors are collected in :class:`~trtc_exporter.errors.Errors` with field paths, like every
other block. The Redis password is only ever a file path here; :func:`read_password` turns the
file into a :class:`~trtc_exporter.secret.Secret`, so no repr, log line or exception prints it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from trtc_exporter.errors import ConfigError, Errors, show
from trtc_exporter.secret import Secret

_COORDINATION = frozenset({"redis_url", "password_file", "cluster", "heartbeat", "ca_file",
                           "cert_file", "key_file", "insecure_skip_verify", "replicas"})
_FILES = ("password_file", "ca_file", "cert_file", "key_file")
DEFAULT_CLUSTER = "default"
DEFAULT_HEARTBEAT = 5.0
MIN_HEARTBEAT = 1.0
"""Seconds. A heartbeat may take up to the Redis timeout (0.5 s, ``coordination/link.py``) and
its thread may be delayed by a busy process: with a TTL of 3 heartbeats below 3 s, live members
drop out and rejoin several times a minute (20 ms: 30 membership changes in 20 s), moving
targets back and forth. 1 s is what the integration tests and ``bench/ha.py`` measured."""
MAX_CLUSTER_NAME = 64
TTL_FACTOR = 3  # a member is gone after missing this many heartbeats
DEFAULT_REPLICAS = 2  # the HA overlay's replica count
MAX_REPLICAS = 1000


@dataclass(frozen=True, slots=True)
class CoordinationConfig:
    """Where the replicas meet; ``enabled`` is False without ``redis_url`` (embedded mode)."""

    redis_url: str | None = None
    password_file: str | None = None
    cluster: str = DEFAULT_CLUSTER
    heartbeat: float = DEFAULT_HEARTBEAT
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure_skip_verify: bool = False
    replicas: int = DEFAULT_REPLICAS
    """How many replicas are deployed: the members a replica assumes until its first heartbeat
    (Redis unreachable since it started), so its fallback share is ``limit / replicas``."""

    @property
    def enabled(self) -> bool:
        """True when ``coordination.redis_url`` is set: replicas share limiter, targets and
        state."""
        return self.redis_url is not None

    @property
    def member_ttl(self) -> float:
        """Seconds after its last heartbeat that a member counts as gone (3 heartbeats)."""
        return TTL_FACTOR * self.heartbeat

    @property
    def tls(self) -> bool:
        """True for a ``rediss://`` URL (TLS to Redis)."""
        return self.redis_url is not None and self.redis_url.startswith("rediss://")


def parse_coordination(raw: object, errors: Errors) -> CoordinationConfig:
    """Validate the ``coordination:`` block; an absent block is embedded mode."""
    block = errors.mapping(raw, "coordination", _COORDINATION)
    p = "coordination."
    files = {key: _file(block, key, errors) for key in _FILES}
    config = CoordinationConfig(
        redis_url=_redis_url(block, errors),
        cluster=_cluster(block, errors),
        heartbeat=_heartbeat(block, errors),
        insecure_skip_verify=errors.boolean(block, "insecure_skip_verify", p, False),
        replicas=errors.integer(block, "replicas", p, DEFAULT_REPLICAS, minimum=1,
                                maximum=MAX_REPLICAS) or DEFAULT_REPLICAS,
        **files,
    )
    _check_combinations(config, block, errors)
    return config


def _redis_url(block: Mapping[str, Any], errors: Errors) -> str | None:
    url = errors.string(block, "redis_url", "coordination.", None)
    if url is None:
        return None
    where = "coordination.redis_url"
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # "redis://[::1", a port beyond 65535
        parts, port_ok = None, False
    if parts is None or parts.scheme not in ("redis", "rediss") or not parts.hostname \
            or not port_ok:
        errors.add(where, "must be a redis:// or rediss:// URL with a host")
        return None
    if parts.password is not None:  # never echo the URL: it holds the password
        errors.add(where, "must not contain a password; use coordination.password_file")
        return None
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        # redis-py's from_url turns every query parameter into a client option that wins over
        # ours: ?password= would bypass password_file, ?ssl_cert_reqs= the TLS checks
        errors.add(where, "must not have a query or fragment (redis-py would let it override "
                          "the password file, TLS and timeouts); use the coordination fields")
        return None
    if not _database_path(parts.path):
        errors.add(where, f"the path must be empty or /<database number>, got {show(parts.path)}")
        return None
    return url


def _database_path(path: str) -> bool:
    """True for "", "/" or "/<n>" with 0 <= n < 2**31 (Redis' SELECT index). redis-py would read
    "/abc" as database 0 and "/0/1" as database 1 without a word."""
    number = path[1:]
    if path in ("", "/"):
        return True
    return (path.startswith("/") and number.isascii() and number.isdigit() and len(number) <= 10
            and int(number) < 2**31)


def _heartbeat(block: Mapping[str, Any], errors: Errors) -> float:
    seconds = errors.duration(block, "heartbeat", "coordination.", DEFAULT_HEARTBEAT)
    if seconds < MIN_HEARTBEAT:
        errors.add("coordination.heartbeat",
                   f"must be at least {MIN_HEARTBEAT:g}s, got {show(block.get('heartbeat'))}")
        return DEFAULT_HEARTBEAT
    return seconds


def _cluster(block: Mapping[str, Any], errors: Errors) -> str:
    name = errors.string(block, "cluster", "coordination.", DEFAULT_CLUSTER) or ""
    if not name or len(name) > MAX_CLUSTER_NAME or not all(
            c.isascii() and (c.isalnum() or c in "-_.") for c in name):
        errors.add("coordination.cluster", f"must be 1-{MAX_CLUSTER_NAME} characters of "
                                           f"[A-Za-z0-9._-], got {show(name)}")
        return DEFAULT_CLUSTER
    return name


def _file(block: Mapping[str, Any], key: str, errors: Errors) -> str | None:
    value = errors.string(block, key, "coordination.", None)
    if value == "" or (value is not None and "\x00" in value):
        errors.add(f"coordination.{key}", "must be a file path" if value else "must not be empty")
        return None
    return value


def _check_combinations(config: CoordinationConfig, block: Mapping[str, Any],
                        errors: Errors) -> None:
    tls_given = [k for k in ("ca_file", "cert_file", "key_file", "insecure_skip_verify")
                 if getattr(config, k)]
    if tls_given and config.redis_url is not None and not config.tls:
        errors.add(f"coordination.{tls_given[0]}", "needs a rediss:// redis_url")
    if (block.get("cert_file") is None) != (block.get("key_file") is None):
        errors.add("coordination", "cert_file and key_file must be set together")
    others = [k for k in block if k != "redis_url" and block.get(k) is not None]
    if others and block.get("redis_url") is None:
        errors.add("coordination.redis_url", f"is required when coordination.{others[0]} is set")


def changed_fields(old: CoordinationConfig, new: CoordinationConfig) -> list[str]:
    """The field paths (``coordination.heartbeat``, …) whose values differ, in declaration
    order: a reload refuses each by name, since none can change under a running cluster."""
    return [f"coordination.{f.name}" for f in fields(CoordinationConfig)
            if getattr(old, f.name) != getattr(new, f.name)]


def read_password(path: str | None) -> Secret | None:
    """The Redis password from its file (trailing newline dropped); ConfigError if unreadable."""
    if path is None:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError([f"coordination.password_file: cannot read {path}: {reason}"]) from None
    if not text:
        raise ConfigError([f"coordination.password_file: {path} is empty"])
    return Secret(text)
