"""The HTTP server under hostile connection patterns, over real sockets on 127.0.0.1.

Bounded in time and count: a few hundred sockets and a few seconds each. The numbers of the
bench (bench/http_server.py) are larger; these tests prove the properties, not the speed.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from trtc_exporter.web.toolkit.server import ExporterHTTPServer, Limits, SecureHandlerMixin
from trtc_exporter.web.toolkit.webconfig import WebConfigStore

PASSWORD = b"right-password"


class Counting(SecureHandlerMixin):
    """Answers GET after auth and counts the requests that reached it."""

    served = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        if not self.check_auth():
            return
        with Counting.lock:
            Counting.served += 1
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def serving(store: WebConfigStore | None = None, **kwargs: Any) -> Iterator[ExporterHTTPServer]:
    Counting.served = 0
    server = ExporterHTTPServer(("127.0.0.1", 0), Counting, store, **kwargs)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def get(port: int, headers: str = "", source: str = "127.0.0.1") -> tuple[int, float]:
    """(status, seconds) of one GET /metrics on a fresh connection from ``source``."""
    started = time.monotonic()
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET /metrics HTTP/1.1\r\nHost: x\r\n{headers}"
                     "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), time.monotonic() - started


def test_sequential_connects_never_wait_for_a_syn_retransmit() -> None:
    """100 connects in a row while 300 others arrive in a burst each take well under 1 s."""
    with serving() as server:
        port = server.server_address[1]
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        slowest = max(get(port)[1] for _ in range(100))
        for sock in burst:
            sock.close()
    assert slowest < 0.9  # a SYN retransmit (backlog overflow) costs ≥ 1 s


def test_slowloris_is_bounded_and_never_processed() -> None:
    """700 half-open requests: threads stay bounded, a real scrape is fast, and when the
    attackers hang up nothing of theirs is served."""
    threads_before = threading.active_count()
    with serving(limits=Limits(max_connections=256)) as server:
        port = server.server_address[1]
        half_open = []
        for _ in range(700):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            half_open.append(sock)
        status, seconds = get(port)
        assert status == 200 and seconds < 2.0
        assert threading.active_count() - threads_before <= server.limits.workers + 2
        assert server.loop.open_connections <= 256
        for sock in half_open:
            sock.close()
        time.sleep(0.5)
        assert Counting.served == 1  # only the real scrape
        assert server.loop.shed >= 700 - 256


def test_incomplete_heads_time_out() -> None:
    """A connection that never completes its head is closed after the header timeout."""
    with serving(limits=Limits(header_timeout=0.3)) as server, \
            socket.create_connection(("127.0.0.1", server.server_address[1])) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")
        sock.settimeout(5)
        started = time.monotonic()
        assert sock.recv(1) == b""
        assert time.monotonic() - started < 3
        assert Counting.served == 0


@pytest.fixture
def auth_store(tmp_path: Path) -> WebConfigStore:
    hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=10)).decode()
    (tmp_path / "web.yml").write_text(f"basic_auth_users:\n  admin: {hashed}\n")
    return WebConfigStore(str(tmp_path / "web.yml"))


def _basic(password: bytes) -> str:
    return "Authorization: Basic " + base64.b64encode(b"admin:" + password).decode() + "\r\n"


def test_a_wrong_password_flood_does_not_delay_a_real_first_login(
        auth_store: WebConfigStore) -> None:
    """32 clients hammering wrong passwords from one address; a first login from another
    address still answers within a second (one global bcrypt lock made it 5.5 s)."""
    stop = threading.Event()
    statuses: list[int] = []

    def attack(port: int) -> None:
        while not stop.is_set():
            statuses.append(get(port, _basic(b"wrong"))[0])

    with serving(auth_store) as server:
        port = server.server_address[1]
        attackers = [threading.Thread(target=attack, args=(port,)) for _ in range(32)]
        for thread in attackers:
            thread.start()
        time.sleep(1.0)
        status, seconds = get(port, _basic(PASSWORD), source="127.0.0.2")
        stop.set()
        for thread in attackers:
            thread.join(10)
    assert status == 200 and seconds < 1.0, seconds
    assert set(statuses) <= {401, 429} and 429 in statuses
