"""HTTP front of the simulator: executes the decisions of ``SimulatorAPI`` on real sockets.

ThreadingHTTPServer with one daemon thread per connection and HTTP/1.1 keep-alive (every answer
carries Content-Length), so a ``requests.Session`` reuses its connection like it would with the
real endpoint. Delays run on the simulator's clock; faults that need the socket itself (reset,
trickle) are done here and nowhere else. Each API request is timed by the kernel's receive stamp
of its first byte (``arrival.py``), not by when its handler thread got to run.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import struct
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.simulator import arrival
from trtc_exporter.simulator.api import MAX_BODY, SimulatorAPI
from trtc_exporter.simulator.control import PREFIX, handle_control
from trtc_exporter.simulator.envelope import ApiResult, Transport, encode
from trtc_exporter.simulator.scenario import Scenario

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0
"""Seconds an idle keep-alive connection is kept open."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # a burst of concurrent connects must not overflow the backlog

    def __init__(self, address: tuple[str, int], api: SimulatorAPI) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.api = api
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self.accepted = 0
        self.stamping = arrival.enable(self.socket)  # accepted sockets inherit the option

    def handle_error(self, request: object, client_address: object) -> None:
        """Log handler crashes (tests watch for them); a client hanging up is not a crash."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("client %s went away", client_address)
            return
        log.exception("simulator handler failed for %s", client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "trtc-simulator"
    timeout = IDLE_TIMEOUT

    def version_string(self) -> str:
        return self.server_version

    @property
    def sim(self) -> _Server:
        return cast(_Server, self.server)

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile.close()  # replaced by a reader that keeps the kernel's arrival stamps
        self.reader = arrival.StampedReader(self.connection)
        self.rfile = io.BufferedReader(self.reader)
        with self.sim.connections_lock:
            self.sim.connections.add(self.connection)
            self.sim.accepted += 1

    def finish(self) -> None:
        with self.sim.connections_lock:
            self.sim.connections.discard(self.connection)
        with contextlib.suppress(OSError, ValueError):  # socket reset on purpose or by the client
            super().finish()

    def handle_one_request(self) -> None:
        self.reader.arm()  # the next byte read from the socket starts a request
        super().handle_one_request()

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header follows the simulator's clock, so clients can measure skew with it."""
        when = self.sim.api.clock.time() if timestamp is None else timestamp
        return formatdate(when, usegmt=True)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        api = self.sim.api
        arrived, source = arrival.monotonic_arrival(self.reader.stamp, api.clock)
        body = self._read_body()
        if body is None:
            return
        if self.path.startswith(PREFIX):
            control = handle_control(api, method, self.path, body)
            self._send(control.status, "application/json", encode(control.payload))
        elif self.path.split("?", 1)[0] == "/":
            api.stats.stamped(source)
            headers = dict(self.headers.items())
            self._deliver(api.handle(method, headers, body, arrived))
        else:
            self._send(404, "text/plain", b"not found: the API is served at / only\n")

    def _read_body(self) -> bytes | None:
        raw = self.headers.get("Content-Length", "0")
        length = int(raw) if raw.isdigit() else -1
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "")
        if length < 0 or length > MAX_BODY or chunked:
            self.close_connection = True
            self._send(411 if length < 0 else 413, "text/plain", b"bad Content-Length\n")
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _deliver(self, result: ApiResult) -> None:
        clock = self.sim.api.clock
        if result.delay > 0:
            clock.sleep(result.delay)
        try:
            if result.transport is Transport.RESET:
                self._reset()
            elif result.transport is Transport.TRICKLE:
                self._trickle(result, clock)
            else:
                self._send(result.status, result.content_type, result.body)
        except OSError:  # the client gave up (e.g. its timeout fired during a delay)
            self.close_connection = True

    def _trickle(self, result: ApiResult, clock: Clock) -> None:
        self.send_response(result.status)
        self.send_header("Content-Type", result.content_type)
        self.send_header("Content-Length", str(len(result.body)))
        self.end_headers()
        self.wfile.flush()
        step = max(1, result.trickle_chunk)
        for i in range(0, len(result.body), step):
            if i:
                clock.sleep(result.trickle_interval)
            self.wfile.write(result.body[i : i + step])
            self.wfile.flush()

    def _reset(self) -> None:
        """Abort the TCP connection with RST (SO_LINGER 0), as a crashed peer or proxy would."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.connection.close()
        self.wfile = io.BytesIO()  # the stdlib flushes wfile after every request; let it


class SimulatorServer:
    """The simulator on a TCP port; ``start`` returns the base URL to point a client at."""

    def __init__(self, api: SimulatorAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.api = api
        self._httpd = _Server((host, port), api)
        self._thread: threading.Thread | None = None

    @classmethod
    def from_scenario(
        cls, scenario: Scenario, host: str = "127.0.0.1", port: int = 0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> SimulatorServer:  # fmt: skip
        """Shortcut for ``SimulatorServer(SimulatorAPI(scenario, clock), host, port)``."""
        return cls(SimulatorAPI(scenario, clock), host, port)

    @property
    def url(self) -> str:
        """``http://host:port`` with the port actually bound (useful after asking for port 0)."""
        host, port = self._httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def connections_accepted(self) -> int:
        """TCP connections accepted so far (shows whether clients reuse keep-alive connections)."""
        with self._httpd.connections_lock:
            return self._httpd.accepted

    def start(self) -> str:
        """Serve in a background daemon thread; returns the base URL."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                name="trtc-simulator", daemon=True,
            )  # fmt: skip
            self._thread.start()
            log.info("TRTC simulator listening on %s", self.url)
            if self.api.callbacks is not None:
                self.api.callbacks.start()
                log.info("sending TRTC event callbacks to %s", self.api.callbacks.spec.url)
        return self.url

    def stop(self) -> None:
        """Stop accepting and sending callbacks, drop keep-alive connections, release the port."""
        if self.api.callbacks is not None:
            self.api.callbacks.stop()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        with self._httpd.connections_lock:
            open_connections = list(self._httpd.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
