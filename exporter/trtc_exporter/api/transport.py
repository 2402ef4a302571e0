"""The client's HTTP transport: connections made by the standard library's ``http.client``
(TCP, TLS, a proxy's tunnel), a small pool of them kept alive and shared by the worker threads,
each request and answer exchanged by ``exchange.py`` (httptools parses), and a report of when
each request has been written.

Why ``http.client`` connects (docs/performance.md, "Goal 4/5, sixth round"): without a second TLS
stack: Python's ``ssl`` is loaded anyway, so it adds no memory, where pycurl's wheel added about
12 MB (its own libcurl and OpenSSL). Why it no longer sends and reads ("Goal 5, seventh round"):
its request and response objects cost more CPU than the rest of the exchange.

The write report. The budget counts a request from the instant it leaves: the server stamps it
when it arrives, and a thread granted a token can still be held up before its bytes reach the
socket. ``on_written(callback)`` arms ``callback`` for the calling thread; it fires as soon as
the request's one ``sendall`` returns (request line, headers and body handed to the kernel),
before the answer is awaited; through a proxy too (the tunnel is set up when the connection is
made, before any request is sent through it).

One request per token. Nothing here sends a request twice by itself. A kept-alive
connection the server closed while it sat idle is found before reuse where that is cheap (its
socket is readable: the server's FIN, or bytes nobody asked for) and replaced; one closed as the
request arrives fails the attempt as ``ConnectionError`` ("connection lost before the answer"),
and the client's own retry takes a fresh token. Connections idle for longer than :data:`MAX_IDLE`
seconds are closed, not reused: below common server idle timeouts (60 to 75 s).

The environment is read once, at start, with requests' functions (requests stays for the webhook
relay and the metadata credentials), so a deployment's settings mean what they meant:
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` give the proxy (an ``http://`` one:
``CONNECT`` tunnels to an https endpoint, the absolute-form request target to an http one; an
``https://`` or ``socks5://`` proxy is refused with an error at start and on every attempt, where
urllib3 spoke TLS to an https one), and
``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` (else certifi's bundle) the only CAs trusted, loaded
into one ``ssl.SSLContext`` on the first TLS connection. Peer and host name are verified.
"""

from __future__ import annotations

import base64
import http.client
import io
import logging
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol
from urllib.parse import unquote, urlsplit

import requests

from trtc_exporter.api.exchange import TransportError as TransportError  # its home before
from trtc_exporter.api.exchange import exchange, request_bytes, settimeout_until
from trtc_exporter.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger("trtc_exporter.client")

MAX_BODY_BYTES = 1 << 20  # an answer's body beyond this is refused (InvalidResponse)
MAX_IDLE = 30  # seconds a kept-alive connection may sit unused before it is closed, not reused
MAX_CONNECTIONS = 64  # idle connections kept for reuse: more than the poller's workers (30)
_armed = threading.local()
_deadline = threading.local()  # this thread's attempt: the monotonic instant it ends
Connection = http.client.HTTPConnection  # or its HTTPSConnection subclass


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: ``status``, its ``Date`` header (None without one) and its ``body`` (read
    whole for a 200; left unread, b"", for any other status)."""

    status: int
    date: str | None
    body: bytes


class Transport(Protocol):
    """What the client sends through (:class:`HttpTransport`; benches inject an in-process
    simulator)."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST ``body`` to ``url``; the connect (TCP, TLS, a proxy's tunnel; not the name
        lookup) and the whole answer within ``timeout`` seconds. Raises
        :class:`TransportError`."""


@contextmanager
def on_written(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` (at most once, on this thread) when this thread's next request has been
    written to its socket; disarmed at exit whether or not it fired."""
    _armed.callback = callback
    try:
        yield
    finally:
        _armed.callback = None


def _written() -> None:
    callback = getattr(_armed, "callback", None)
    if callback is not None:
        _armed.callback = None
        callback()


def proxy_for(endpoint: str) -> str | None:
    """The proxy URL the environment names for ``endpoint``, or None: ``HTTPS_PROXY`` /
    ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY``, either case, read by requests' own
    functions so the reading is what it was when requests sent the API calls."""
    return requests.utils.select_proxy(endpoint, requests.utils.get_environ_proxies(endpoint))


def ca_bundle() -> str:
    """The CA bundle path: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when set, else
    requests' default (certifi's bundle), so the trust is what it was."""
    return (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            or requests.utils.DEFAULT_CA_BUNDLE_PATH)


class HttpTransport:
    """``http.client`` for one endpoint: connections lent one per request in flight (an
    ``HTTPConnection`` is not thread-safe) from a LIFO list of idle ones, so the warm connection
    goes first and the threads reuse a few instead of one each. HTTP/1.1 keep-alive, no
    redirects, no retries; proxy and CA bundle read from the environment here, once. ``clock``
    ages the idle connections; an attempt's deadline is the sockets' own real time.
    """

    def __init__(self, endpoint: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self._clock = clock
        proxy = proxy_for(endpoint) or ""
        # "host:port" means http://host:port, as requests reads it
        self.proxy = proxy if not proxy or "://" in proxy else "http://" + proxy
        if urlsplit(self.proxy).scheme not in ("", "http"):
            log.error("the API proxy %s is not supported: the client speaks plain HTTP to its "
                      "proxy (CONNECT for https); name it http://host:port in HTTPS_PROXY / "
                      "HTTP_PROXY / ALL_PROXY", _without_credentials(self.proxy))
        self.ca_bundle = ca_bundle()
        self._context: ssl.SSLContext | None = None
        self._lock = threading.Lock()
        self._idle: list[tuple[tuple[str, str], Connection, float]] = []  # (key, conn, since)

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST ``body`` to ``url`` over an idle connection or a new one; see :class:`Transport`."""
        deadline = _deadline.at = time.monotonic() + timeout
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        conn = self._reusable(key)
        if conn is None:
            conn = self._connect(parts.scheme, parts.hostname or "", parts.port, timeout)
        target = url if self.proxy and parts.scheme == "http" else (
            (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
        try:
            reply, keep = _exchange(conn, target, body, headers, deadline, timeout)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._give_back(key, conn)
        else:
            conn.close()
        return reply

    @property
    def connections(self) -> int:
        """How many kept-alive connections are idle (all of them, when no request is in flight)."""
        return len(self._idle)

    def _reusable(self, key: tuple[str, str]) -> Connection | None:
        """The most recently returned idle connection to ``key`` that is still usable; stale
        ones on the way are closed."""
        now = self._clock.monotonic()
        while True:
            with self._lock:
                found = next((i for i in range(len(self._idle) - 1, -1, -1)
                              if self._idle[i][0] == key), None)
                if found is None:
                    return None
                _, conn, since = self._idle.pop(found)
            if now - since <= MAX_IDLE and not _readable(conn):
                return conn
            conn.close()  # idle too long, or the server closed it (or sent what nobody asked)

    def _give_back(self, key: tuple[str, str], conn: Connection) -> None:
        """Keep ``conn`` for reuse; close the ones idle too long (the list is in the order they
        came back: the oldest first) and any beyond :data:`MAX_CONNECTIONS`."""
        now = self._clock.monotonic()
        with self._lock:
            stale = 0
            while stale < len(self._idle) and now - self._idle[stale][2] > MAX_IDLE:
                stale += 1
            closing = [idle[1] for idle in self._idle[:stale]]
            del self._idle[:stale]
            if len(self._idle) < MAX_CONNECTIONS:
                self._idle.append((key, conn, now))
            else:
                closing.append(conn)
        for old in closing:
            old.close()

    def _connect(self, scheme: str, host: str, port: int | None, timeout: float) -> Connection:
        """A new connection, connected (through the proxy's tunnel for https); raises
        :class:`TransportError` (Timeout, ConnectionError)."""
        conn: Connection
        proxy = urlsplit(self.proxy) if self.proxy else None
        if proxy is not None and proxy.scheme != "http":
            raise TransportError("ConnectionError", f"{proxy.scheme}:// proxy not supported "
                                 "(name it http:// in the environment)")
        at = (proxy.hostname or "", proxy.port or 80) if proxy else (host, port)
        if scheme == "https":
            conn = http.client.HTTPSConnection(*at, timeout=timeout, context=self._tls())
            if proxy:
                conn.set_tunnel(host, port or 443, headers=_proxy_auth(proxy.username,
                                                                       proxy.password))
        else:
            conn = http.client.HTTPConnection(*at, timeout=timeout)
        conn.response_class = _Response  # a proxy's CONNECT reply, by the deadline
        conn._create_connection = _connect_by_deadline  # type: ignore[attr-defined]
        try:
            conn.connect()
        except TimeoutError:
            conn.close()
            raise TransportError("Timeout", f"no answer within {timeout:g}s") from None
        except ssl.SSLError as exc:  # the certificate not trusted, the handshake refused
            conn.close()
            raise TransportError("ConnectionError", type(exc).__name__) from None
        except OSError:  # refused, unreachable, no name, the proxy's tunnel refused
            conn.close()
            raise TransportError("ConnectionError", "could not connect") from None
        return conn

    def _tls(self) -> ssl.SSLContext:
        """The one TLS context (the CA bundle only, peer and host name verified), built on first
        use: loading the bundle costs about 1 MB and some milliseconds."""
        with self._lock:
            if self._context is None:
                try:
                    self._context = ssl.create_default_context(cafile=self.ca_bundle)
                except OSError as exc:  # the named bundle is missing or unreadable
                    raise TransportError("ConnectionError",
                                         f"CA bundle unreadable: {exc.strerror}") from None
            return self._context


def _connect_by_deadline(address: tuple[str, int], timeout: float | None = None,
                         source_address: tuple[str, int] | None = None) -> socket.socket:
    """``socket.create_connection`` for ``http.client``, bounded by this thread's attempt
    deadline (``_deadline.at``): the TCP connect gets what is left of it, and so does what
    follows on the socket (the TLS handshake, a proxy's tunnel), where ``http.client`` gave the
    connect and then the handshake the whole ``timeout`` each (an attempt could take twice
    ``api.timeout``). Not bounded: the name lookup (``getaddrinfo`` takes no timeout), and a
    host with several addresses gives each connect try what was left when the first began.
    Raises TimeoutError once the deadline has passed."""
    left = _deadline.at - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock = socket.create_connection(address, left, source_address)
    try:
        settimeout_until(sock, _deadline.at)
    except BaseException:
        sock.close()
        raise
    return sock


class _Response(http.client.HTTPResponse):
    """A proxy's reply to ``CONNECT`` (the one answer http.client still reads here) read from
    the socket through :class:`_DeadlineReader`: its head and any interim 1xx answers within
    the attempt's deadline (http.client bounds each socket read by the socket's timeout only,
    so a proxy sending a little before each read times out could hold the worker for as long as
    it likes)."""

    def __init__(self, sock: socket.socket, debuglevel: int = 0, method: str | None = None,
                 url: str | None = None) -> None:
        super().__init__(sock, debuglevel, method, url)
        self.fp = io.BufferedReader(_DeadlineReader(self.fp, sock, _deadline.at))


class _DeadlineReader(io.RawIOBase):
    """The socket file http.client opened (kept: it holds the socket open until the answer is
    read, after a ``Connection: close``), each read bounded by what is left until ``deadline``
    (monotonic s): :class:`TimeoutError` once it has passed."""

    def __init__(self, file: io.BufferedReader, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._file, self._sock, self._deadline = file, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        settimeout_until(self._sock, self._deadline)
        return self._file.raw.readinto(memoryview(buffer))

    def close(self) -> None:
        self._file.close()
        super().close()


def _without_credentials(url: str) -> str:
    """``url`` with its user and password (if any) masked, for a log line: a proxy's user name
    can be an account name too."""
    parts = urlsplit(url)
    _, at, host = parts.netloc.rpartition("@")
    if not at:
        return url
    return parts._replace(netloc=f"***@{host}").geturl()


def _proxy_auth(user: str | None, password: str | None) -> dict[str, str] | None:
    """The ``Proxy-Authorization`` header a proxy URL's user and password give (as requests
    sends it), or None."""
    if not user:
        return None
    pair = f"{unquote(user)}:{unquote(password or '')}".encode("latin-1")
    return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _readable(conn: Connection) -> bool:
    """Whether an idle connection's socket has something to read: the server's FIN (it closed
    the connection) or bytes nobody asked for; either way it must not carry a request."""
    sock = conn.sock
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _exchange(conn: Connection, target: str, body: bytes, headers: dict[str, str],
              deadline: float, timeout: float) -> tuple[Reply, bool]:
    """Send the request, report the write, read the answer (``exchange.py``): (the reply,
    whether the connection may be kept). Raises :class:`TransportError`."""
    if conn.sock is None:
        raise TransportError("ConnectionError", "not connected")
    request = request_bytes(target, headers, body)
    status, date, payload, keep = exchange(conn.sock, request, deadline, timeout,
                                           MAX_BODY_BYTES, _written)
    return Reply(status, date, payload), keep
