"""The exporter's HTTP server with the exporter-toolkit security layer: TLS, mTLS, basic auth.

Connections are run by :class:`~trtc_exporter.web.toolkit.connections.ConnectionLoop` (bounded
threads and memory, complete and checked requests only, TLS handshakes without a thread, each
with the SSLContext current at that moment, which is how rotated certificates take effect).
Request handlers derive from :class:`SecureHandlerMixin`: ``check_auth()`` first in every
``do_*``; security headers, JSON errors and the body reader come with it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import logging
import socket
import socketserver
import ssl
from collections.abc import Mapping
from dataclasses import replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import bcrypt

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.web.toolkit.answers import error_body
from trtc_exporter.web.toolkit.auth import BasicAuthenticator, CheckPw, Verdict
from trtc_exporter.web.toolkit.connections import ConnectionLoop, Limits, Request
from trtc_exporter.web.toolkit.framing import FramingError, printable, read_chunked
from trtc_exporter.web.toolkit.reader import BufferedSocketReader
from trtc_exporter.web.toolkit.webconfig import WebConfig, WebConfigStore

__all__ = ["BasicAuthenticator", "ExporterHTTPServer", "Limits", "SecureHandlerMixin",
           "authorize", "parse_listen_address", "san_allowed", "send_security_headers"]

log = logging.getLogger("trtc_exporter.httpserver")  # caller= stays as before

HANDSHAKE_TIMEOUT_SECONDS = 10.0
LISTEN_BACKLOG = 1024
"""listen(2) backlog (the kernel caps it at net.core.somaxconn); 5 made connects wait for a SYN
retransmit (~1 s) under a burst."""
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


class ExporterHTTPServer(socketserver.TCPServer):
    """The exporter's HTTP(S) server: a :class:`ConnectionLoop` on one listening socket.

    Same surface as ``socketserver`` servers (``serve_forever``, ``shutdown``,
    ``server_close``, ``server_address``); the loop bounds threads and memory under any
    connection pattern, and requests reach ``handler_class`` complete and checked.
    """

    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: str | tuple[str, int],
                 handler_class: type[BaseHTTPRequestHandler],
                 web_config_store: WebConfigStore | None, *,
                 unauthenticated_paths: frozenset[str] = frozenset(),
                 handshake_timeout: float = HANDSHAKE_TIMEOUT_SECONDS,
                 checkpw: CheckPw = bcrypt.checkpw, limits: Limits | None = None,
                 clock: Clock = SYSTEM_CLOCK, bind_and_activate: bool = True) -> None:
        host, port = parse_listen_address(address) if isinstance(address, str) else address
        self.address_family = _address_family(host)
        self._dual_stack = not host and self.address_family == socket.AF_INET6
        self.web_config_store = web_config_store
        self.unauthenticated_paths = unauthenticated_paths
        self.limits = replace(limits or Limits(), handshake_timeout=handshake_timeout)
        self.authenticator = BasicAuthenticator(checkpw, clock=clock)
        super().__init__(("::" if self._dual_stack else host, port), handler_class,
                         bind_and_activate)
        self.loop = ConnectionLoop(self.socket, self._serve_one, self._tls_context,
                                   self._security_headers, self.limits, clock)

    def server_bind(self) -> None:
        """Bind; for an empty host (``:9877``) clear IPV6_V6ONLY first so one socket takes IPv4
        and IPv6, as Go's listeners do."""
        if self._dual_stack:  # ":9877" means IPv4 and IPv6, as in every Go exporter
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def web_config(self) -> WebConfig | None:
        """The config in force now (None without ``--web.config.file``)."""
        return self.web_config_store.current() if self.web_config_store else None

    def serve_forever(self, poll_interval: float | None = None) -> None:
        """Serve until :meth:`shutdown` (called from another thread). Unlike socketserver's,
        the loop needs no ``poll_interval`` to notice a shutdown (it is woken); a number bounds
        each wait anyway. An idle exporter's web thread sleeps until a connection comes."""
        self.loop.run(poll_interval)

    def shutdown(self) -> None:
        """Stop accepting and reading; returns when the loop has ended."""
        self.loop.stop()

    def server_close(self) -> None:
        """Close the listening socket and every connection."""
        super().server_close()
        if hasattr(self, "loop"):  # TCPServer closes before the loop exists when bind fails
            self.loop.close()

    def bound_address(self) -> str:
        """What this server really listens on: ``127.0.0.1:9877``, ``[::]:9877 (IPv4+IPv6)``."""
        host, port = str(self.server_address[0]), self.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}" + (" (IPv4+IPv6)" if self._dual_stack else "")

    def _tls_context(self) -> ssl.SSLContext | None:
        config = self.web_config()
        return config.tls.context if config is not None and config.tls is not None else None

    def _security_headers(self) -> tuple[tuple[str, str], ...]:
        config = self.web_config()
        return config.headers if config is not None else ()

    def _serve_one(self, request: Request) -> bool:
        """Runs in a worker: client-SAN check, then one request; True to keep the connection."""
        config = self.web_config()
        sock, peer = request.conn.sock, request.conn.peer
        if (config is not None and config.tls is not None and config.tls.client_allowed_sans
                and isinstance(sock, ssl.SSLSocket)
                and not san_allowed(sock.getpeercert(), config.tls.client_allowed_sans)):
            log.warning("TLS client %s rejected: no SAN in client_allowed_sans", peer[0])
            return False
        exchange = Exchange(request)
        try:
            handler = self.RequestHandlerClass(exchange, peer, self)  # type: ignore[arg-type]
        except (ConnectionError, TimeoutError, ssl.SSLError) as exc:
            log.debug("connection from %s ended early: %s", peer[0], exc)
            return False
        except Exception:
            log.error("error while serving %s", peer[0], exc_info=True)
            return False
        request.conn.buffer = bytearray(exchange.reader.leftover())
        return not getattr(handler, "close_connection", True) and exchange.body_done()


class Exchange:
    """One request as a handler receives it (its ``request``): the connection, a reader that
    starts with the bytes the loop read, and the framing the loop checked."""

    def __init__(self, request: Request) -> None:
        self.sock = request.conn.sock
        self.framing = request.framing
        self.reader = BufferedSocketReader(self.sock, request.head + request.rest)
        self.body_read = False

    def body_done(self) -> bool:
        """True when nothing of the body is left unread (so the connection may be reused)."""
        return self.body_read or (not self.framing.chunked and self.framing.length == 0)


class _Writer:
    """The handler's ``wfile``: every write goes straight to the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered."""


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) of a Basic ``Authorization`` value; the scheme is case-insensitive
    (RFC 9110 §11.1) and any run of spaces may follow it."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        return (user.decode("utf-8"), password) if sep else None
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def connection_tokens(handler: BaseHTTPRequestHandler) -> set[str]:
    """The ``Connection`` options of the request, lower-cased (a comma list, RFC 9110 §7.6.1)."""
    values = handler.headers.get_all("Connection") or []
    return {token.strip().lower() for value in values for token in value.split(",")} - {""}


class SecureHandlerMixin(BaseHTTPRequestHandler):
    """Base for the exporter's request handler (served by :class:`ExporterHTTPServer`).

    Call ``check_auth()`` first in every ``do_*`` and return when it is False (the 401 is sent).
    ``end_headers`` adds the configured security headers to every response, errors included;
    every error is the JSON document of :mod:`answers`; ``read_body`` reads the request body
    as framed (Content-Length or chunked).
    """

    _web_config: WebConfig | None = None
    request: Exchange

    def setup(self) -> None:
        """Take the streams from the connection loop's exchange (TLS already done, reader
        buffered) instead of making them from the socket."""
        self.connection = self.request.sock
        self.rfile = self.request.reader  # type: ignore[assignment]
        self.wfile = _Writer(self.request.sock)  # type: ignore[assignment]

    def handle(self) -> None:
        """Exactly one request: the loop takes the connection back for the next one."""
        self.close_connection = True
        self.handle_one_request()

    def finish(self) -> None:
        """The connection stays open; the server decides whether to keep it."""

    def version_string(self) -> str:
        """The ``Server`` header: the product name alone (no trailing space)."""
        return " ".join(part for part in (self.server_version, self.sys_version) if part)

    def check_auth(self) -> bool:
        """Basic auth for this request; False after a 401 (or 429) has been sent."""
        return authorize(self)

    def parse_request(self) -> bool:
        """Parse the request line and headers (False after an error answer), then decide
        keep-alive from ``Connection`` and the HTTP version (HTTP/1.0 closes unless
        ``keep-alive``)."""
        self._web_config = None  # one config per request, even on a kept-alive connection
        if not super().parse_request():
            return False
        tokens = connection_tokens(self)
        if "close" in tokens:
            self.close_connection = True
        elif self.request_version == "HTTP/1.0":
            self.close_connection = "keep-alive" not in tokens
        else:
            self.close_connection = False
        return True

    def read_body(self, max_bytes: int) -> bytes:
        """The request body (b"" when there is none); FramingError 413 past ``max_bytes`` or
        400 for a bad chunked body; IncompleteRequest when the client stops sending."""
        framing = self.request.framing
        if framing.chunked:
            body = read_chunked(self.request.reader, max_bytes)
        elif framing.length > max_bytes:
            raise FramingError(413, f"body: larger than {max_bytes} bytes")
        else:
            body = self.request.reader.read(framing.length)
        self.request.body_read = True
        return body

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """Errors found by ``http.server`` itself (bad request line, unsupported method) as JSON.

        Always with a status line: the loop lets only ``HTTP/…`` requests through, so the
        stdlib's HTTP/0.9 bare-body answer (before it has read the version) never fits."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.send_error_json(code, message or HTTPStatus(code).phrase)

    def send_error_json(self, status: int, *errors: str,
                        headers: Mapping[str, str] | None = None) -> None:
        """An error answer in the one JSON shape, with ``headers`` added."""
        self.send_body(status, error_body(*errors), "application/json", headers)

    def send_body(self, status: int, body: bytes | list[bytes], content_type: str,
                  headers: Mapping[str, str] | None = None) -> None:
        """Send a complete response: status, Content-Type, Content-Length, extra headers,
        ``Connection: close`` when the connection will close, and the body (not for HEAD).
        ``body`` may come in pieces (a large exposition), written in turn without a copy."""
        pieces = [body] if isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(sum(map(len, pieces))))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")  # keep-alive clients must know
        self.end_headers()
        if self.command != "HEAD":
            for piece in pieces:
                self.wfile.write(piece)

    def end_headers(self) -> None:
        """Add the web config's security headers to every response, then end the header block."""
        send_security_headers(self)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """http.server's access and error lines, at debug, with control characters escaped."""
        log.debug("http %s - %s", self.address_string(), printable(format % args))


def _server_of(handler: BaseHTTPRequestHandler) -> ExporterHTTPServer:
    if not isinstance(handler.server, ExporterHTTPServer):  # fail closed, never skip auth
        raise TypeError("SecureHandlerMixin needs an ExporterHTTPServer")
    return handler.server


def authorize(handler: SecureHandlerMixin) -> bool:
    """Apply basic auth to the current request; send 401 (429 when throttled) and return False
    when it fails."""
    server = _server_of(handler)
    config = handler._web_config = server.web_config()
    if config is None or not config.users:
        return True
    if urlsplit(handler.path).path in server.unauthenticated_paths:
        return True
    credentials = _basic_credentials(handler.headers.get("Authorization"))
    verdict = Verdict.WRONG
    if credentials is not None:
        verdict = server.authenticator.check(config, *credentials, handler.client_address[0])
    if verdict is Verdict.OK:
        return True
    handler.close_connection = True  # an unread request body must not become the next request
    if verdict is Verdict.THROTTLED:
        handler.send_error_json(HTTPStatus.TOO_MANY_REQUESTS,
                                "too many failed logins from this address; try again later",
                                headers={"Retry-After": "60"})
    else:
        handler.send_error_json(HTTPStatus.UNAUTHORIZED, "Unauthorized",
                                headers={"WWW-Authenticate": "Basic"})
    return False


def send_security_headers(handler: SecureHandlerMixin) -> None:
    """Add ``http_server_config.headers`` to the response being written."""
    config = handler._web_config or _server_of(handler).web_config()
    for name, value in config.headers if config else ():
        handler.send_header(name, value)
