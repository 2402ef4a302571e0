"""The connection loop: one thread reads request heads for every connection, workers answer.

Why not a thread per connection (``ThreadingHTTPServer``)? 1 700 half-open connections grew the
process to 1 066 threads, and each was served as a full request when its client hung up. Here:

- one selector thread accepts, runs TLS handshakes and reads request heads, non-blocking, so a
  slow or silent client costs a socket and a buffer of at most ``MAX_HEAD_BYTES``, no thread;
- a request reaches a worker (a bounded pool) only when its head is complete and its framing is
  checked (:mod:`framing`); a connection that closes earlier is dropped, never processed;
- deadlines: the TLS handshake, the head (from the connection's start or its first byte after
  a kept-alive response) and idle keep-alive connections are closed when theirs pass;
- at most ``max_connections`` connections: at the cap a new connection replaces the oldest one
  that has not sent a complete head (then the oldest idle one), so a flood of half-open
  connections churns itself while real clients, which send their request at once, get in;
- a kept-alive connection goes back to the loop after each response, so idle scrapers hold no
  worker.
"""

from __future__ import annotations

import contextlib
import logging
import math
import selectors
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.web.toolkit.answers import raw_error
from trtc_exporter.web.toolkit.framing import (
    MAX_HEAD_BYTES,
    Framing,
    FramingError,
    check_head,
    head_end,
    printable,
)

log = logging.getLogger("trtc_exporter.httpserver")

MAX_CONNECTIONS = 512
"""Default cap of open connections per listener (``--web.max-connections``)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds of the loop; seconds for the timeouts. Defaults are documented in docs/security.md.

    ``max_connections`` open connections, ``workers`` threads answering requests,
    ``handshake_timeout`` for TLS, ``header_timeout`` for a complete request head,
    ``idle_timeout`` for a kept-alive connection between requests, ``io_timeout`` for each read
    of a body and each write of a response.
    """

    max_connections: int = MAX_CONNECTIONS
    workers: int = 8
    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    idle_timeout: float = 300.0  # longer than any scrape interval, so Prometheus keeps its one
    io_timeout: float = 30.0


class Stage(Enum):
    """Where a connection is: handshaking, awaiting a head, idle between requests, at a worker."""

    HANDSHAKE = 0
    HEAD = 1
    IDLE = 2
    BUSY = 3


@dataclass(eq=False)
class Connection:
    """One client connection as the loop sees it; ``buffer`` holds bytes not yet consumed."""

    sock: socket.socket
    peer: tuple[str, int]
    stage: Stage
    deadline: float
    since: float
    buffer: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class Request:
    """A complete, checked request head handed to a worker, with the bytes read after it."""

    conn: Connection
    head: bytes
    rest: bytes
    framing: Framing


Dispatch = Callable[[Request], bool]  # True: keep the connection open for the next request
TLSContext = Callable[[], ssl.SSLContext | None]
Headers = Callable[[], tuple[tuple[str, str], ...]]


class ConnectionLoop:
    """Accepts on ``listener`` and runs the selector loop until :meth:`stop`."""

    def __init__(self, listener: socket.socket, dispatch: Dispatch, tls: TLSContext,
                 headers: Headers, limits: Limits, clock: Clock = SYSTEM_CLOCK) -> None:
        self.limits = limits
        self._clock = clock
        self.shed = 0  # connections closed to make room at the cap
        self._listener = listener
        self._dispatch = dispatch
        self._tls = tls
        self._headers = headers
        self._selector = selectors.DefaultSelector()
        self._conns: set[Connection] = set()
        self._returned: list[Connection] = []
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="http")
        self._stopping = threading.Event()
        self._stopped = threading.Event()

    def run(self, poll_interval: float | None = None) -> None:
        """Serve until :meth:`stop`; ``poll_interval`` (seconds) bounds each wait in the
        selector, None leaves it unbounded: :meth:`stop` and returning workers wake the loop
        through its wake socket, and each connection's deadline bounds the wait anyway."""
        self._listener.setblocking(False)
        self._wake_r.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._stopped.clear()
        wait = 0.0
        try:
            while not self._stopping.is_set():
                timeout = wait if poll_interval is None else min(poll_interval, wait)
                for key, events in self._selector.select(None if timeout == math.inf
                                                         else timeout):
                    self._event(key, events)
                self._take_back()
                wait = self._sweep(self._clock.monotonic())
        finally:
            for sock in (self._listener, self._wake_r):
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(sock)
            self._stopped.set()

    def stop(self) -> None:
        """Ask the loop to end and wait until it has."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._stopped.wait()
        self._stopping.clear()

    def close(self) -> None:
        """Close every connection and the worker pool (workers in flight finish on their own)."""
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            self._drop(conn)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def open_connections(self) -> int:
        """How many client connections are open now (for tests and the bench)."""
        with self._lock:
            return len(self._conns)

    # -- events -----------------------------------------------------------------------------
    def _event(self, key: selectors.SelectorKey, events: int) -> None:
        if key.fileobj is self._listener:
            self._accept()
        elif key.fileobj is self._wake_r:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        elif isinstance(key.data, Connection):
            self._advance(key.data)

    def _accept(self) -> None:
        for _ in range(64):  # a burst at a time; the backlog keeps the rest
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE: the cap should prevent it; keep serving
                log.warning("accept failed: %s", exc)
                return
            if not self._make_room():
                _close(sock)
                continue
            self._open(sock, (str(peer[0]), int(peer[1])))

    def _make_room(self) -> bool:
        with self._lock:
            if len(self._conns) < self.limits.max_connections:
                return True
            waiting = [c for c in self._conns if c.stage is not Stage.BUSY]
        if not waiting:
            return False
        victim = min(waiting, key=lambda c: (c.stage is Stage.IDLE, c.since))
        self.shed += 1
        log.debug("connection cap reached: closing %s", _peer(victim))
        self._drop(victim)
        return True

    def _open(self, sock: socket.socket, peer: tuple[str, int]) -> None:
        sock.setblocking(False)
        with contextlib.suppress(OSError):  # headers and body are separate writes
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        now = self._clock.monotonic()
        context = self._tls()
        stage, timeout = Stage.HEAD, self.limits.header_timeout
        if context is not None:
            try:
                sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError as exc:
                log.debug("TLS setup for %s failed: %s", peer[0], exc)
                _close(sock)
                return
            stage, timeout = Stage.HANDSHAKE, self.limits.handshake_timeout
        conn = Connection(sock, peer, stage, now + timeout, now)
        with self._lock:
            self._conns.add(conn)
        self._watch(conn, selectors.EVENT_READ)

    def _watch(self, conn: Connection, events: int) -> None:
        try:
            self._selector.modify(conn.sock, events, conn)
        except KeyError:
            self._selector.register(conn.sock, events, conn)

    def _advance(self, conn: Connection) -> None:
        """Move ``conn`` on as far as the bytes available allow."""
        if conn.stage is Stage.HANDSHAKE and not self._handshake(conn):
            return
        if not self._read(conn):
            return
        conn.buffer = bytearray(conn.buffer.lstrip(b"\r\n"))  # RFC 9112 §2.2: empty lines
        end = head_end(conn.buffer)
        if end < 0:
            if len(conn.buffer) > MAX_HEAD_BYTES:
                self._refuse(conn, FramingError(431, "request head too large"))
            return
        head, rest = bytes(conn.buffer[:end]), bytes(conn.buffer[end:])
        try:
            framing = check_head(head)
        except FramingError as exc:
            self._refuse(conn, exc, head)
            return
        conn.stage, conn.buffer = Stage.BUSY, bytearray()
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        try:
            self._pool.submit(self._work, Request(conn, head, rest, framing))
        except RuntimeError:  # the pool is shut down: the server is closing
            self._drop(conn)

    def _handshake(self, conn: Connection) -> bool:
        assert isinstance(conn.sock, ssl.SSLSocket)
        try:
            conn.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._watch(conn, selectors.EVENT_READ)
            return False
        except ssl.SSLWantWriteError:
            self._watch(conn, selectors.EVENT_WRITE)
            return False
        except OSError as exc:  # SSLError and resets are all OSErrors
            log.debug("TLS handshake with %s failed: %s", conn.peer[0], exc)
            self._drop(conn)
            return False
        now = self._clock.monotonic()
        conn.stage, conn.deadline = Stage.HEAD, now + self.limits.header_timeout
        self._watch(conn, selectors.EVENT_READ)
        return True

    def _read(self, conn: Connection) -> bool:
        """Read what is there; False when the connection was closed meanwhile."""
        while True:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return True
            except OSError as exc:
                log.debug("connection from %s failed: %s", conn.peer[0], exc)
                self._drop(conn)
                return False
            if not data:
                if conn.buffer.strip(b"\r\n"):
                    log.debug("client %s hung up before its request was complete; dropped",
                              conn.peer[0])
                self._drop(conn)
                return False
            if conn.stage is Stage.IDLE:
                conn.stage, conn.deadline = Stage.HEAD, self._clock.monotonic() + \
                    self.limits.header_timeout
            conn.buffer += data
            if len(conn.buffer) > MAX_HEAD_BYTES or not _more(conn.sock, len(data)):
                return True

    def _refuse(self, conn: Connection, exc: FramingError, head: bytes = b"") -> None:
        line = head.split(b"\n", 1)[0].decode("latin-1").rstrip("\r")
        log.debug("refused a request from %s (%s): %s", conn.peer[0], printable(line[:200]),
                  exc)
        with contextlib.suppress(OSError):
            conn.sock.send(raw_error(exc.status, str(exc), self._headers()))
        self._drop(conn)

    # -- workers ----------------------------------------------------------------------------
    def _work(self, request: Request) -> None:
        conn = request.conn
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(self.limits.io_timeout)
            keep = self._dispatch(request)
        except Exception:  # dispatch logs what it knows; never lose the connection slot
            log.debug("request from %s failed", conn.peer[0], exc_info=True)
            keep = False
        if not keep:
            self._drop(conn)
            return
        with self._lock:
            self._returned.append(conn)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _take_back(self) -> None:
        with self._lock:
            returned, self._returned = self._returned, []
        now = self._clock.monotonic()
        for conn in returned:
            with contextlib.suppress(OSError):
                conn.sock.setblocking(False)
            conn.stage, conn.since = Stage.IDLE, now
            conn.deadline = now + self.limits.idle_timeout
            if conn.buffer:  # a pipelined request already read
                conn.stage, conn.deadline = Stage.HEAD, now + self.limits.header_timeout
            self._watch(conn, selectors.EVENT_READ)
            if conn.buffer or _pending(conn.sock):
                self._advance(conn)

    def _sweep(self, now: float) -> float:
        """Close the connections past their deadline; the seconds until the next deadline
        (inf when none). The loop sleeps exactly that long: an idle exporter's web thread
        wakes only for connections and their deadlines, not on a fixed tick (issue 16:
        the 10 Hz tick was half a thread wake per API request at full budget)."""
        with self._lock:
            waiting = [c for c in self._conns if c.stage is not Stage.BUSY]
        late = [c for c in waiting if c.deadline <= now]
        for conn in late:
            log.debug("connection from %s timed out (%s)", conn.peer[0], conn.stage.name.lower())
            self._drop(conn)
        return min((c.deadline - now for c in waiting if c.deadline > now), default=math.inf)

    def _drop(self, conn: Connection) -> None:
        with self._lock:
            if conn not in self._conns:
                return
            self._conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        _close(conn.sock)


def _more(sock: socket.socket, got: int) -> bool:
    """Whether another recv may find data now (a full read, or TLS bytes already decrypted)."""
    return got == 65536 or _pending(sock)


def _pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0


def _peer(conn: Connection) -> str:
    return conn.peer[0]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
