"""The HTTP server under floods: the hardened server against the stdlib one it replaced and cheroot.

Each server runs alone in a child process on 127.0.0.1 and serves the same thing: basic auth
(bcrypt cost 10, the exporter's authenticator) in front of a 60 KB text body. The floods, run
from this process, in this order:

- first login, idle: one request of a user never seen before;
- connect: 300 connections opened at once and left open, then 100 sequential GETs (p50, max);
- scrapers: 20 threads x 25 GETs, each on a new connection, logged-in user (p50, p99);
- bcrypt flood: 32 threads sending wrong passwords from 127.0.0.1; after 1 s a first login of
  another user from 127.0.0.2 (its latency);
- slowloris: N half-open requests (default 1 000); a GET meanwhile (latency), the server's
  threads and RSS growth; then the attackers hang up and the requests served after that are
  counted (they should be 0: an incomplete request must never be processed).

``before`` is the stdlib ``ThreadingHTTPServer`` as the exporter used it (listen backlog 5, a
thread per connection, one global bcrypt lock); ``cheroot`` (optional: ``pip install cheroot``;
skipped when absent) runs a throwaway WSGI adapter of the same handler with cheroot's defaults
except its thread pool, set to the hardened server's worker count. Nothing here is product code.

    python bench/http_server.py [--slowloris 1000] [--servers before,hardened,cheroot]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import multiprocessing
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import MappingProxyType
from typing import Any, ClassVar

import bcrypt

from trtc_exporter.secret import Secret
from trtc_exporter.web.toolkit.auth import BasicAuthenticator, Verdict
from trtc_exporter.web.toolkit.connections import Limits
from trtc_exporter.web.toolkit.server import ExporterHTTPServer, SecureHandlerMixin
from trtc_exporter.web.toolkit.webconfig import WebConfig

BODY = b"".join(b'trtc_bench_series{task_id="t-%06d",region="ap-guangzhou"} 1\n' % i
                for i in range(1200))
USERS = ("admin", "first-idle", "first-flood")
PASSWORD = b"right-password"
TIMEOUT = 10.0


def _web_config() -> WebConfig:
    hashed = bcrypt.hashpw(PASSWORD, bcrypt.gensalt(rounds=10)).decode()
    return WebConfig(users=MappingProxyType({u: Secret(hashed) for u in USERS}), dummy_cost=10)


class _Served:
    count = 0
    lock = threading.Lock()

    @classmethod
    def add(cls) -> None:
        with cls.lock:
            cls.count += 1


def _credentials(header: str | None) -> tuple[str, bytes]:
    try:
        user, _, password = base64.b64decode((header or "").split(" ", 1)[1]).partition(b":")
        return user.decode(), password
    except (IndexError, ValueError):
        return "", b""


# -- the three servers (child processes) ---------------------------------------------------
class _Hardened(SecureHandlerMixin):
    def do_GET(self) -> None:
        if self.path == "/served":
            self._answer(str(_Served.count).encode())
        elif self.check_auth():
            _Served.add()
            self._answer(BODY)

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Before(BaseHTTPRequestHandler):
    """The old behaviour: one global bcrypt lock (as the exporter-toolkit's bcryptMtx)."""

    protocol_version = "HTTP/1.1"
    bcrypt_lock = threading.Lock()
    config = _web_config()
    ok: ClassVar[set[tuple[str, bytes]]] = set()

    def do_GET(self) -> None:
        if self.path == "/served":
            body = str(_Served.count).encode()
        else:
            user, password = _credentials(self.headers.get("Authorization"))
            if (user, password) not in self.ok:
                stored = self.config.users.get(user)
                with self.bcrypt_lock:
                    good = stored is not None and bcrypt.checkpw(password[:72],
                                                                 stored.reveal().encode())
                if not good:
                    self.send_response(401)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.ok.add((user, password))
            _Served.add()
            body = BODY
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _cheroot_app(config: WebConfig) -> Callable[..., list[bytes]]:
    authenticator = BasicAuthenticator()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/served":
            body = str(_Served.count).encode()
        else:
            user, password = _credentials(environ.get("HTTP_AUTHORIZATION"))
            verdict = authenticator.check(config, user, password, environ["REMOTE_ADDR"])
            if verdict is not Verdict.OK:
                start_response("401 Unauthorized", [("Content-Length", "0")])
                return [b""]
            _Served.add()
            body = BODY
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    return app


def _serve(kind: str, ports: Any) -> None:
    config = _web_config()
    if kind == "hardened":
        server: Any = ExporterHTTPServer(("127.0.0.1", 0), _Hardened, None)
        server.web_config = lambda: config
        ports.put(server.server_address[1])
        server.serve_forever()
    elif kind == "before":
        ThreadingHTTPServer.request_queue_size = 5
        ThreadingHTTPServer.daemon_threads = True
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Before)
        ports.put(server.server_address[1])
        server.serve_forever()
    else:
        from cheroot import wsgi  # optional, bench only

        server = wsgi.Server(("127.0.0.1", 0), _cheroot_app(config),
                             numthreads=Limits().workers)
        server.prepare()
        ports.put(server.bind_addr[1])
        server.serve()


# -- the client side -----------------------------------------------------------------------
def _basic(user: str, password: bytes) -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:".encode() + password).decode()


def _get(port: int, auth: str, source: str = "127.0.0.1", path: str = "/metrics") -> float:
    """Seconds for one GET on a new connection; TIMEOUT when it fails or takes longer."""
    started = time.monotonic()
    try:
        with socket.socket() as sock:
            sock.settimeout(TIMEOUT)
            sock.bind((source, 0))
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n"
                         "Connection: close\r\n\r\n".encode())
            while sock.recv(65536):
                if time.monotonic() - started > TIMEOUT:
                    return TIMEOUT
    except OSError:
        return TIMEOUT
    return time.monotonic() - started


def _proc(pid: int) -> tuple[int, float]:
    """(threads, RSS MB) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":", 1) for line in status)
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def _server(kind: str) -> Iterator[tuple[int, int]]:
    ports: Any = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(target=_serve, args=(kind, ports),
                                                         daemon=True)
    child.start()
    try:
        yield ports.get(timeout=30), int(child.pid or 0)
    finally:
        child.kill()
        child.join(5)


def _flood_bcrypt(port: int) -> float:
    stop = threading.Event()

    def attack() -> None:
        while not stop.is_set():
            _get(port, _basic("admin", b"wrong"))

    attackers = [threading.Thread(target=attack, daemon=True) for _ in range(32)]
    for thread in attackers:
        thread.start()
    time.sleep(1.0)
    seconds = _get(port, _basic("first-flood", PASSWORD), source="127.0.0.2")
    stop.set()
    for thread in attackers:
        thread.join(TIMEOUT + 1)
    return seconds


def _scrapers(port: int, auth: str) -> list[float]:
    times: list[float] = []

    def scrape() -> None:
        times.extend(_get(port, auth) for _ in range(25))

    threads = [threading.Thread(target=scrape) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def _slowloris(port: int, pid: int, count: int, auth: str) -> dict[str, float]:
    threads0, rss0 = _proc(pid)
    served0 = int(_body(port, "/served"))
    socks = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"\r\nX: ")
            socks.append(sock)
        except OSError:
            break
    time.sleep(0.5)
    during = _get(port, auth)
    threads1, rss1 = _proc(pid)
    for sock in socks:
        sock.close()
    time.sleep(3.0)
    return {"opened": len(socks), "during": during, "threads": threads1 - threads0,
            "rss": rss1 - rss0, "served_after": int(_body(port, "/served") or 0) - served0 - 1}


def _body(port: int, path: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1].decode() or "0"


def measure(kind: str, slowloris: int) -> dict[str, float]:
    """Every flood against one server kind, in a fresh child process."""
    auth = _basic("admin", PASSWORD)
    with _server(kind) as (port, pid):
        out: dict[str, float] = {"first_login_idle": _get(port, _basic("first-idle", PASSWORD))}
        _get(port, auth)  # log in once: later scrapes are cached
        burst = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
        connects = [_get(port, auth) for _ in range(100)]
        for sock in burst:
            sock.close()
        out |= {"connect_p50": statistics.median(connects), "connect_max": max(connects),
                "connect_over_0.9s": sum(t > 0.9 for t in connects)}
        scrapes = _scrapers(port, auth)
        out |= {"scrape_p50": _pct(scrapes, 0.5), "scrape_p99": _pct(scrapes, 0.99)}
        out["first_login_flood"] = _flood_bcrypt(port)
        loris = _slowloris(port, pid, slowloris, auth)
        out |= {f"slowloris_{k}": v for k, v in loris.items()}
    return out


ROWS = [("first_login_idle", "first login, idle (s)"),
        ("connect_p50", "sequential GET during a 300-connect burst, p50 (s)"),
        ("connect_max", "  max (s)"), ("connect_over_0.9s", "  GETs over 0.9 s (of 100)"),
        ("scrape_p50", "20 concurrent scrapers, p50 (s)"), ("scrape_p99", "  p99 (s)"),
        ("first_login_flood", "first login during 32-client wrong-password flood (s)"),
        ("slowloris_opened", "slowloris: half-open connections opened"),
        ("slowloris_during", "  GET during slowloris (s; 10 = timed out)"),
        ("slowloris_threads", "  server threads added"), ("slowloris_rss", "  RSS growth (MB)"),
        ("slowloris_served_after", "  incomplete requests served after hang-up")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slowloris", type=int, default=1000)
    parser.add_argument("--servers", default="before,hardened,cheroot")
    args = parser.parse_args()
    kinds = args.servers.split(",")
    if "cheroot" in kinds:
        try:
            import cheroot  # noqa: F401  (optional, bench only)
        except ImportError:
            print("cheroot not installed: skipped (pip install cheroot)", file=sys.stderr)
            kinds.remove("cheroot")
    results = {kind: measure(kind, args.slowloris) for kind in kinds}
    print(f"{'':58}" + "".join(f"{kind:>12}" for kind in kinds))
    for key, label in ROWS:
        print(f"{label:58}" + "".join(f"{results[k][key]:>12.3f}" for k in kinds))
    print(f"(cpus: {os.cpu_count()}, workers: {Limits().workers}, "
          f"max connections: {Limits().max_connections})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
