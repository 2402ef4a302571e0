"""The exporter's HTTP server with the exporter-toolkit security layer: TLS, mTLS, basic auth.

TLS handshakes run in the per-connection thread with a timeout, never in the accept loop, so one
slow client cannot stall the others; each handshake uses the SSLContext current at that moment,
which is how rotated certificates take effect. Request handlers derive from
:class:`SecureHandlerMixin`: ``check_auth()`` first in every ``do_*``, headers come for free.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import secrets
import socket
import ssl
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import bcrypt

from trtc_exporter.web.toolkit.webconfig import TLSServerConfig, WebConfig, WebConfigStore

__all__ = ["BasicAuthenticator", "ExporterHTTPServer", "SecureHandlerMixin", "authorize",
           "parse_listen_address", "san_allowed", "send_security_headers"]

log = logging.getLogger("trtc_exporter.httpserver")  # caller= stays as before

HANDSHAKE_TIMEOUT_SECONDS = 10.0
AUTH_CACHE_SIZE = 100
CheckPw = Callable[[bytes, bytes], bool]
_SAN_KINDS = ("DNS", "IP Address", "email", "URI")  # as Go's DNSNames, IPs, emails and URIs


def parse_listen_address(address: str) -> tuple[str, int]:
    """Split ``:9877``, ``host:9877`` or ``[::1]:9877`` like Go's net.Listen; "" = all hosts."""
    host, sep, port = address.rpartition(":")
    problem = ""
    if not sep:
        problem = "expected host:port, [ipv6]:port or :port"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            problem = "only an IPv6 address may be in brackets"
    elif ":" in host or "[" in host or "]" in host:
        problem = "write an IPv6 address in brackets, e.g. [::1]:9877"
    if not problem and not (port.isascii() and port.isdigit() and int(port) <= 65535):
        problem = "the port must be a number from 0 to 65535"
    if problem:
        raise ValueError(f'listen address "{address}": {problem}')
    return host, int(port)


def _address_family(host: str) -> socket.AddressFamily:
    """IPv6 for IPv6 hosts; for "" a dual-stack socket where possible, as Go listens."""
    if not host:
        return socket.AF_INET6 if socket.has_dualstack_ipv6() else socket.AF_INET
    try:
        return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise ValueError(f'listen address host "{host}": {exc.strerror}') from None


def san_allowed(peercert: Mapping[str, Any] | None, allowed: frozenset[str]) -> bool:
    """True when a DNS, IP, e-mail or URI SAN of the verified client cert is in ``allowed``."""
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "IP Address":  # OpenSSL prints IPv6 in full; Go's String() compresses it
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))
        if kind in _SAN_KINDS and value in allowed:
            return True
    return False


def _close(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn.shutdown(socket.SHUT_WR)
    conn.close()


class BasicAuthenticator:
    """bcrypt checks with a bounded cache of successes; unknown users pay a decoy check.

    The cache maps a keyed digest of (user, stored hash) to a keyed digest that also covers the
    password: no plain password is kept, a changed hash misses, and the final comparison is
    constant-time. ``checkpw`` is injectable so tests can count the expensive calls.
    """

    def __init__(self, checkpw: CheckPw = bcrypt.checkpw,
                 cache_size: int = AUTH_CACHE_SIZE) -> None:
        self._checkpw = checkpw
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._bcrypt_lock = threading.Lock()  # one bcrypt at a time, as the toolkit: CPU-bound
        self._key = secrets.token_bytes(32)
        self._decoys: dict[int, bytes] = {}

    def verify(self, config: WebConfig, username: str, password: bytes) -> bool:
        """True when ``username`` is configured and ``password`` matches its bcrypt hash."""
        decoy = self._decoy(config.dummy_cost)
        stored = config.users.get(username)
        if stored is None:
            self._check(password, decoy)  # same work as a real user: timing hides who exists
            return False
        hashed = stored.reveal().encode()
        slot = self._mac(b"slot", username.encode(), hashed)
        proof = self._mac(b"proof", username.encode(), hashed, password)
        with self._lock:
            cached = self._cache.get(slot)
        if cached is not None and hmac.compare_digest(cached, proof):
            return True
        if not self._check(password, hashed):
            return False
        with self._lock:
            self._cache[slot] = proof
            self._cache.move_to_end(slot)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return True

    def _mac(self, *parts: bytes) -> bytes:
        message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _check(self, password: bytes, hashed: bytes) -> bool:
        with self._bcrypt_lock:
            try:
                return bool(self._checkpw(password, hashed))
            except ValueError:  # e.g. longer than 72 bytes, which bcrypt>=5 refuses
                return False

    def _decoy(self, cost: int) -> bytes:
        with self._lock:
            if cost not in self._decoys:
                salt = bcrypt.gensalt(rounds=cost)
                self._decoys[cost] = bcrypt.hashpw(secrets.token_hex(16).encode(), salt)
            return self._decoys[cost]


class ExporterHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that applies the current web config to every connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str | tuple[str, int],
                 handler_class: type[BaseHTTPRequestHandler],
                 web_config_store: WebConfigStore | None, *,
                 unauthenticated_paths: frozenset[str] = frozenset(),
                 handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS,
                 checkpw: CheckPw = bcrypt.checkpw, bind_and_activate: bool = True) -> None:
        host, port = parse_listen_address(address) if isinstance(address, str) else address
        self.address_family = _address_family(host)
        self._dual_stack = not host and self.address_family == socket.AF_INET6
        self.web_config_store = web_config_store
        self.unauthenticated_paths = unauthenticated_paths
        self.handshake_timeout = handshake_timeout
        self.authenticator = BasicAuthenticator(checkpw)
        super().__init__(("::" if self._dual_stack else host, port), handler_class,
                         bind_and_activate)

    def server_bind(self) -> None:
        if self._dual_stack:  # ":9877" means IPv4 and IPv6, as in every Go exporter
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def web_config(self) -> WebConfig | None:
        """The config in force now (None without ``--web.config.file``)."""
        return self.web_config_store.current() if self.web_config_store else None

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Runs in the connection's thread: handshake here, then hand over to the handler."""
        config = self.web_config()
        if config is None or config.tls is None or not isinstance(request, socket.socket):
            super().finish_request(request, client_address)
            return
        conn = self._handshake(request, config.tls, client_address)
        if conn is None:
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            _close(conn)

    def _handshake(self, sock: socket.socket, tls: TLSServerConfig,
                   client_address: Any) -> ssl.SSLSocket | None:
        peer = client_address[0] if isinstance(client_address, tuple) else client_address
        try:
            conn = tls.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            log.debug("TLS setup for %s failed: %s", peer, exc)
            return None
        try:
            conn.settimeout(self.handshake_timeout)
            conn.do_handshake()
            if tls.client_allowed_sans and not san_allowed(conn.getpeercert(),
                                                           tls.client_allowed_sans):
                log.warning("TLS client %s rejected: no SAN in client_allowed_sans", peer)
                _close(conn)
                return None
            conn.settimeout(None)
        except OSError as exc:  # SSLError, timeouts and resets are all OSErrors
            log.debug("TLS handshake with %s failed: %s", peer, exc)
            _close(conn)
            return None
        return conn

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing to stderr; a client hanging up is not worth a traceback."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError | ssl.SSLError):
            log.debug("connection from %s ended early", client_address, exc_info=True)
        else:
            log.error("error while serving %s", client_address, exc_info=True)


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


class SecureHandlerMixin(BaseHTTPRequestHandler):
    """Base for the exporter's request handler (served by :class:`ExporterHTTPServer`).

    Call ``check_auth()`` first in every ``do_*`` and return when it is False (the 401 is sent).
    ``end_headers`` adds the configured security headers to every response, errors included.
    """

    _web_config: WebConfig | None = None

    def setup(self) -> None:
        super().setup()
        # headers and body go out as separate writes; without NODELAY a kept-alive connection
        # (Prometheus keeps its scrape connection) waits ~40 ms for the delayed ACK each time
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def check_auth(self) -> bool:
        """Basic auth for this request; False after a 401 has been sent."""
        return authorize(self)

    def parse_request(self) -> bool:
        self._web_config = None  # one config per request, even on a kept-alive connection
        return super().parse_request()

    def end_headers(self) -> None:
        send_security_headers(self)
        super().end_headers()


def _server_of(handler: BaseHTTPRequestHandler) -> ExporterHTTPServer:
    if not isinstance(handler.server, ExporterHTTPServer):  # fail closed, never skip auth
        raise TypeError("SecureHandlerMixin needs an ExporterHTTPServer")
    return handler.server


def authorize(handler: SecureHandlerMixin) -> bool:
    """Apply basic auth to the current request; send 401 and return False when it fails."""
    server = _server_of(handler)
    config = handler._web_config = server.web_config()
    if config is None or not config.users:
        return True
    if urlsplit(handler.path).path in server.unauthenticated_paths:
        return True
    credentials = _basic_credentials(handler.headers.get("Authorization"))
    if credentials is not None and server.authenticator.verify(config, *credentials):
        return True
    body = b"Unauthorized\n"
    handler.send_response(401)
    handler.send_header("WWW-Authenticate", "Basic")
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(body)))
    handler.close_connection = True  # an unread request body must not become the next request
    handler.send_header("Connection", "close")
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
    return False


def send_security_headers(handler: SecureHandlerMixin) -> None:
    """Add ``http_server_config.headers`` to the response being written."""
    config = handler._web_config or _server_of(handler).web_config()
    for name, value in config.headers if config else ():
        handler.send_header(name, value)
