"""The replica's view of its Redis connection: up or down, and what it knew last.

Every coordinated part reports a ``redis.RedisError`` here and asks :meth:`Link.usable` before
using Redis. While down, Redis is probed at most once per ``retry_interval`` (a PING with the
client's short timeouts), so a dead Redis costs one timeout per interval, not one per request.
After a rejoin the replica stays quiet for ``quiet`` seconds (one limiter span) before using
the shared limiter or heartbeating (:meth:`settled_in`): its last local grants are then a full
window old, so they share no window with its shared grants nor with those of members that count
it as live again. For ``hold`` seconds after a rejoin the shared budget is used only in the
proportion of the members known before the outage that have heartbeated again: the others may
still be spending their fallback share (see :meth:`share`).
"""

from __future__ import annotations

import logging
import ssl
import threading
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trtc_exporter.api.budget import MAX_GUARD
from trtc_exporter.clock import Clock
from trtc_exporter.config.coordination import CoordinationConfig
from trtc_exporter.errors import ConfigError
from trtc_exporter.secret import Secret

log = logging.getLogger(__name__)
TIMEOUT = 0.5  # seconds: socket and connect timeouts; Redis answers in well under a ms
UNSEEN_MEMBERS = 2
"""Members assumed before the first heartbeat unless told (``coordination.replicas``; the HA
overlay runs two replicas): a replica that starts while Redis is unreachable falls back to
``limit / replicas``, not all of it."""


def connect(config: CoordinationConfig, password: Secret | None) -> redis.Redis:
    """A client for ``config.redis_url`` with short timeouts and the configured TLS files.

    The password is handed to redis-py only; its reprs print ``<REDACTED>``
    (checked in tests/coordination/test_link.py).
    """
    if config.redis_url is None:
        raise ValueError("coordination.redis_url is not set")
    tls: dict[str, object] = {}
    if config.tls:
        tls = {"ssl_ca_certs": config.ca_file, "ssl_certfile": config.cert_file,
               "ssl_keyfile": config.key_file,
               "ssl_cert_reqs": "none" if config.insecure_skip_verify else "required",
               "ssl_check_hostname": not config.insecure_skip_verify}
    return redis.Redis.from_url(
        config.redis_url, password=None if password is None else password.reveal(),
        socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, health_check_interval=0,
        retry=no_retry(), **tls)


def first_contact(client: redis.Redis, config: CoordinationConfig) -> redis.RedisError | None:
    """PING once at start-up: None when Redis answers, the error when it cannot be reached
    (refused, timeout, loading: the replica starts on its fallback and probes again).

    Raises ConfigError (one line naming the ``coordination.*`` field) when Redis answers but
    refuses this configuration — a wrong or missing password, a database number out of range,
    an ACL without PING, a TLS certificate that does not verify: waiting would not help, and a
    replica on its fallback would spend budget for nothing.
    """
    try:
        client.ping()
    except redis.RedisError as exc:
        problem = refusal(exc, config)
        if problem is not None:
            raise ConfigError([problem]) from None
        return exc
    return None


def refusal(exc: redis.RedisError, config: CoordinationConfig) -> str | None:
    """The config error line for a Redis error that says "this configuration is refused", None
    for an outage. redis-py raises AuthenticationError for WRONGPASS/NOAUTH (and AUTH to a
    server without a password), ResponseError for a refused SELECT or an ACL denial, and a
    ConnectionError chained to the ``ssl.SSLError`` of a failed TLS handshake. Redis' messages
    never echo the password."""
    where = describe(config.redis_url or "")
    if isinstance(exc, redis.AuthenticationError):
        if config.password_file is None:
            return f"coordination.password_file: Redis at {where} requires a password: set it"
        return (f"coordination.password_file: Redis at {where} refused the password: "
                f"{str(exc).rstrip('.')}")
    if isinstance(exc, redis.ResponseError):
        return f"coordination.redis_url: Redis at {where} refused the connection set-up: {exc}"
    tls = _tls_error(exc)
    if tls is not None:
        reason = (tls.reason or type(tls).__name__).replace("_", " ").lower()
        detail = getattr(tls, "verify_message", None)  # e.g. "self-signed certificate"
        field = "ca_file" if isinstance(tls, ssl.SSLCertVerificationError) else "redis_url"
        return (f"coordination.{field}: TLS with Redis at {where} failed: {reason}"
                + (f" ({detail})" if detail else ""))
    return None


def _tls_error(exc: BaseException) -> ssl.SSLError | None:
    """The ``ssl.SSLError`` behind a redis-py ConnectionError, unless it only says the peer
    closed the connection (that may be an outage)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(
                seen, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def no_retry() -> Retry:
    """No client-side retries: redis-py 6+ retries 3 times with backoff by default, which made
    one failed call to a dead Redis take 4.5 s here; the Link's probe interval retries instead."""
    return Retry(NoBackoff(), 0)


def describe(url: str) -> str:
    """host:port of a Redis URL, for logs (never the password or the whole URL)."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"


class Link:
    """Up/down state of one Redis client; thread-safe."""

    def __init__(self, client: redis.Redis, clock: Clock, retry_interval: float = 1.0,
                 hold: float = 10.0, quiet: float = 1.0 + MAX_GUARD,
                 unseen: int = UNSEEN_MEMBERS) -> None:
        """``quiet``: seconds after a rejoin before shared use (a limiter span, 1 s + the
        largest guard); ``hold``: seconds of proportional share after a rejoin; ``unseen``:
        members assumed before the first heartbeat (``coordination.replicas``)."""
        self.client = client
        self._clock = clock
        self._retry = retry_interval
        self._hold = hold
        self._quiet = quiet
        self._lock = threading.Lock()
        self._up = True
        self._down_since = -1e18
        self._last_probe = -1e18
        self._rejoined_at = -1e18
        self._members_before = 1
        self._lease_end = -1e18  # monotonic: until then other members may count us as live
        # live members at the last successful heartbeat; ``unseen`` before the first
        self.known_members = max(1, unseen)
        self.outages = 0

    @property
    def up(self) -> bool:
        """True while Redis answers (after a rejoin's quiet spell)."""
        with self._lock:
            return self._up

    @property
    def down_since(self) -> float:
        """Monotonic time Redis was first seen failing in the current outage."""
        with self._lock:
            return self._down_since

    def failed(self, exc: Exception) -> None:
        """Report a Redis error: the replica switches to its fallback until Redis answers."""
        with self._lock:
            if not self._up:
                return
            self._up = False
            self._down_since = self._last_probe = self._clock.monotonic()
            self.outages += 1
        log.warning("coordination: Redis unreachable (%s); using the static share 1/%d of "
                    "the budget and own targets", type(exc).__name__, self.known_members)

    def usable(self) -> bool:
        """True when Redis may be used: up, or a due probe just succeeded (a rejoin)."""
        with self._lock:
            if self._up:
                return True
            now = self._clock.monotonic()
            if now - self._last_probe < self._retry:
                return False
            self._last_probe = now
        try:
            self.client.ping()
        except redis.RedisError:
            return False
        with self._lock:
            if not self._up:
                self._up = True
                self._rejoined_at = self._clock.monotonic()
                self._members_before = max(1, self.known_members)
        log.info("coordination: Redis reachable again; rejoining")
        return True

    def settled_in(self) -> float:
        """Seconds until this replica may use the shared limiter and heartbeat after its last
        rejoin (0 when it may now): a local grant is never made after the rejoin (see
        :class:`~coordination.failover.FailoverLimiter`), so one ``quiet`` span after it every
        local grant is a full window old."""
        with self._lock:
            return max(0.0, self._rejoined_at + self._quiet - self._clock.monotonic())

    def share(self) -> float:
        """Fraction of the shared budget usable now: 1, except during the hold after a rejoin,
        when it is (members heartbeating again) / (members known before the outage)."""
        with self._lock:
            if self._clock.monotonic() - self._rejoined_at >= self._hold:
                return 1.0
            return min(1.0, self.known_members / self._members_before)

    def leased(self, ttl: float) -> None:
        """A heartbeat was just tried: other members may count this replica as live (and leave
        its share of the shared window unused by themselves) for ``ttl`` seconds from now."""
        with self._lock:
            self._lease_end = max(self._lease_end, self._clock.monotonic() + ttl)

    @property
    def lease_end(self) -> float:
        """Monotonic time the last heartbeat's entry expires at the latest: until then the
        other members count this replica as live and spend the whole shared rate between them
        (see :meth:`FailoverLimiter._local_acquire`)."""
        with self._lock:
            return self._lease_end

    def saw_members(self, count: int) -> None:
        """Record the live member count of the last heartbeat (at least 1: this replica)."""
        with self._lock:
            self.known_members = max(1, count)
