"""The http.client transport reports each request's write before its answer is awaited, keeps its
connections alive and shares them between threads, never sends a request twice, holds an attempt
to its timeout, and reads proxy and CA settings from the environment once."""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests

from tests.coordination.conftest import self_signed
from trtc_exporter.api import transport
from trtc_exporter.api.transport import HttpTransport, Reply, TransportError
from trtc_exporter.clock import FakeClock

PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy",
              "NO_PROXY", "no_proxy")


class _Ok(BaseHTTPRequestHandler):
    """Reads the request and answers 200 ``{}`` on the kept-alive connection."""

    protocol_version = "HTTP/1.1"
    peers: ClassVar[list[tuple[str, int]]] = []
    paths: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.peers.append(self.client_address)
        self.paths.append(self.path)
        if not self.before_answer():
            self.close_connection = True
            return
        self.send_response_only(200)
        self.send_header("Date", "Tue, 24 Nov 2026 10:02:00 GMT")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def before_answer(self) -> bool:
        """Called once the request is read; False closes the connection unanswered."""
        return True

    def log_message(self, *args: object) -> None:
        return


class _SlowAnswer(_Ok):
    """Reads the request, then answers only once the test has seen the write reported."""

    written = threading.Event()

    def before_answer(self) -> bool:
        assert self.written.wait(5)
        return True


class _DropsSecond(_Ok):
    """Answers the first request on a connection, then reads the next one and closes the
    connection unanswered: a kept-alive connection the server dropped as the request came."""

    def before_answer(self) -> bool:
        self.answered = getattr(self, "answered", 0) + 1
        return self.answered == 1


class _ClosesIdle(_Ok):
    """Answers as if keeping the connection alive (no ``Connection: close``), then closes it:
    a kept-alive connection the server dropped while it sat idle."""

    closed = threading.Event()

    def handle(self) -> None:
        self.handle_one_request()
        self.request.shutdown(socket.SHUT_RDWR)  # the FIN goes out now
        self.closed.set()


class _Trickle(_Ok):
    """Sends the head and then one body byte every 50 ms: each read gets something in time,
    the whole body would take 2 s."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response_only(200)
        self.send_header("Date", "Tue, 24 Nov 2026 10:02:00 GMT")
        self.send_header("Content-Length", "40")
        self.end_headers()
        pause = threading.Event()
        for _ in range(40):
            self.wfile.write(b" ")
            self.wfile.flush()
            pause.wait(0.05)


class _TrickleHead(_Ok):
    """Sends the status line, then one header line every 50 ms (3 s in all): each read gets
    something in time, the head never completes within the attempt."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        pause = threading.Event()
        for n in range(60):
            self.wfile.write(b"X-Slow-%d: x\r\n" % n)
            self.wfile.flush()
            pause.wait(0.05)
        self.wfile.write(b"Content-Length: 2\r\n\r\n{}")


class _Continues(_Ok):
    """Answers ``100 Continue`` every 50 ms (3 s in all) before its 200: interim answers that
    http.client skips one after another."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        pause = threading.Event()
        for _ in range(60):
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.wfile.flush()
            pause.wait(0.05)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")


class _Http10(_Ok):
    """Answers in HTTP/1.0 without Content-Length: the body ends when the server closes."""

    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response_only(200)
        self.end_headers()
        self.wfile.write(b"[" + b"0," * 40000 + b"0]")


def _serve(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server() -> Iterator[str]:
    _Ok.peers.clear()
    _Ok.paths.clear()
    _SlowAnswer.written.set()
    yield from _serve(_SlowAnswer)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable from the machine running the tests."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_written_callback_fires_before_the_answer(server: str) -> None:
    """The callback runs once the body is sent, while the server still holds its answer."""
    _SlowAnswer.written.clear()
    calls: list[str] = []

    def written() -> None:
        calls.append("written")
        _SlowAnswer.written.set()  # the server answers only after this

    with transport.on_written(written):
        reply = HttpTransport(server).post(server, b'{"a": 1}', {}, timeout=10)
    assert reply == Reply(200, "Tue, 24 Nov 2026 10:02:00 GMT", b"{}")
    assert calls == ["written"]


def test_verbose_mode_prints_nothing(server: str, capfd: pytest.CaptureFixture[str],
                                     caplog: pytest.LogCaptureFixture) -> None:
    """The request head, with its Authorization, reaches no stream and no log (http.client's
    debug printing stays off)."""
    caplog.set_level("DEBUG")
    HttpTransport(server).post(server, b"{}", {"Authorization": "TC3 sekrit-signature"},
                               timeout=10)
    out, err = capfd.readouterr()
    assert "sekrit" not in out + err + caplog.text
    assert (out, err) == ("", "")


def test_callback_is_disarmed_after_the_block(server: str) -> None:
    """A request outside on_written calls nothing (the callback fires at most once)."""
    calls: list[int] = []
    http = HttpTransport(server)
    with transport.on_written(lambda: calls.append(1)):
        http.post(server, b"{}", {}, timeout=10)
        http.post(server, b"{}", {}, timeout=10)
    http.post(server, b"{}", {}, timeout=10)
    assert calls == [1]


def test_connection_is_kept_alive_and_shared_by_threads(server: str) -> None:
    """Requests one after another, from two threads, all go over one connection."""
    http = HttpTransport(server)
    http.post(server, b"{}", {}, timeout=10)
    other = threading.Thread(target=http.post, args=(server, b"{}", {}, 10))
    other.start()
    other.join()
    http.post(server, b"{}", {}, timeout=10)
    assert len(_Ok.peers) == 3
    assert len(set(_Ok.peers)) == 1


def test_threads_send_at_once_each_reporting_its_own_write(server: str) -> None:
    """Eight threads posting together through one transport: every request is answered and
    each thread's callback fires once per request, on that thread."""
    http = HttpTransport(server)
    reports: dict[str, int] = {}
    failures: list[BaseException] = []
    start = threading.Barrier(8)

    def run() -> None:
        name = threading.current_thread().name
        start.wait()
        try:
            for _ in range(10):
                with transport.on_written(lambda: reports.update({name: reports.get(name, 0) + 1})):
                    assert http.post(server, b"{}", {}, timeout=10).body == b"{}"
        except BaseException as exc:  # collected, asserted on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, name=f"t{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert reports == {f"t{i}": 10 for i in range(8)}
    assert len(_Ok.peers) == 80
    assert len(set(_Ok.peers)) <= 8  # connections reused, never more than requests at once
    assert 1 <= http.connections <= 8  # a connection per request in flight, not per request


def test_a_dropped_kept_alive_connection_is_not_sent_to_again() -> None:
    """A request written to a kept-alive connection the server then closes fails as
    ConnectionError, and the server sees it once: it is not sent again on a new connection (that
    copy would have no budget token)."""
    _Ok.peers.clear()
    for url in _serve(_DropsSecond):
        http = HttpTransport(url)
        assert http.post(url, b"{}", {}, timeout=5).status == 200
        with pytest.raises(TransportError) as failure:
            http.post(url, b"{}", {}, timeout=5)
        assert (failure.value.code, str(failure.value)) == (
            "ConnectionError", "connection lost before the answer")
        assert len(_Ok.peers) == 2  # the second request once, not twice
        assert http.post(url, b"{}", {}, timeout=5).status == 200  # a new connection
        assert len(_Ok.peers) == 3 and _Ok.peers[2] != _Ok.peers[0]


def test_a_kept_alive_connection_closed_while_idle_is_replaced_before_use() -> None:
    """A kept-alive connection the server closed while idle is seen before reuse: the request
    goes once, over a new connection, and succeeds."""
    _Ok.peers.clear()
    for url in _serve(_ClosesIdle):
        http = HttpTransport(url)
        _ClosesIdle.closed.clear()
        assert http.post(url, b"{}", {}, timeout=5).status == 200
        assert _ClosesIdle.closed.wait(5) and http.connections == 1
        assert http.post(url, b"{}", {}, timeout=5).body == b"{}"
        assert len(_Ok.peers) == 2 and _Ok.peers[1] != _Ok.peers[0]


def test_connections_idle_too_long_are_closed_not_reused(server: str) -> None:
    """A connection idle for longer than MAX_IDLE is not reused (the next request opens a new
    one), and other stale idle ones are closed when a connection comes back."""
    clock = FakeClock()
    http = HttpTransport(server, clock=clock)
    other = server.replace("127.0.0.1", "localhost")  # a second pool key, a second connection
    http.post(server, b"{}", {}, timeout=5)
    http.post(other, b"{}", {}, timeout=5)
    http.post(server, b"{}", {}, timeout=5)
    assert _Ok.peers[2] == _Ok.peers[0] and http.connections == 2
    clock.advance(transport.MAX_IDLE + 1)
    http.post(server, b"{}", {}, timeout=5)
    assert _Ok.peers[3] not in _Ok.peers[:3]
    assert http.connections == 1  # the stale "localhost" one closed too


def test_a_trickling_body_is_a_timeout_at_the_deadline() -> None:
    """A body whose bytes keep coming, each in time, still ends the attempt at its timeout
    (Timeout, with the answer's Date), not when the last byte comes."""
    for url in _serve(_Trickle):
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            HttpTransport(url).post(url, b"{}", {}, timeout=0.3)
        assert time.monotonic() - started < 1.5
        assert (failure.value.code, str(failure.value), failure.value.date) == (
            "Timeout", "body not complete within the timeout", "Tue, 24 Nov 2026 10:02:00 GMT")


@pytest.mark.parametrize("handler", [_TrickleHead, _Continues])
def test_a_trickling_answer_head_is_a_timeout_at_the_deadline(
        handler: type[BaseHTTPRequestHandler]) -> None:
    """A head whose lines (or interim 1xx answers) keep coming, each in time, still ends the
    attempt at its timeout, not when the server is done."""
    for url in _serve(handler):
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            HttpTransport(url).post(url, b"{}", {}, timeout=0.3)
        assert time.monotonic() - started < 1.5
        assert failure.value.code == "Timeout"


def test_an_answer_read_until_the_server_closes_is_whole_and_not_kept() -> None:
    """An HTTP/1.0 answer's body (no length: read until close) arrives whole, although
    http.client lets the connection go before it is read, and the connection is not kept."""
    for url in _serve(_Http10):
        http = HttpTransport(url)
        reply = http.post(url, b"{}", {}, timeout=5)
        assert (reply.status, len(reply.body), http.connections) == (200, 80003, 0)


def test_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to an https endpoint unless NO_PROXY names its host."""
    endpoint = "https://trtc.tencentcloudapi.com"
    assert transport.proxy_for(endpoint) is None
    assert HttpTransport(endpoint).proxy == ""
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert transport.proxy_for(endpoint) == "http://proxy.internal:3128"
    assert HttpTransport(endpoint).proxy == "http://proxy.internal:3128"
    monkeypatch.setenv("NO_PROXY", "tencentcloudapi.com")
    assert transport.proxy_for(endpoint) is None
    assert HttpTransport(endpoint).proxy == ""


def test_a_proxy_named_with_another_scheme_is_a_clear_error(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """An https:// proxy (TLS to the proxy itself) is not spoken: the start logs why and how to
    fix it, without the proxy's password, and every attempt fails saying so, never sent around
    the proxy."""
    monkeypatch.setenv("HTTPS_PROXY", "https://user:s3cret@proxy.internal:3128")
    with caplog.at_level("ERROR"):
        http = HttpTransport("https://trtc.tencentcloudapi.com")
    assert "http://host:port" in caplog.text
    assert "s3cret" not in caplog.text and "user" not in caplog.text
    with pytest.raises(TransportError) as failed:
        http.post("https://trtc.tencentcloudapi.com/", b"{}", {}, timeout=1)
    assert failed.value.code == "ConnectionError" and "https:// proxy" in str(failed.value)


def test_requests_go_through_the_proxy(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY naming a server, the request goes to it in the proxy's absolute form."""
    monkeypatch.setenv("HTTP_PROXY", server.rstrip("/"))
    http = HttpTransport("http://api.example.invalid")
    assert http.post("http://api.example.invalid/", b"{}", {}, timeout=5).status == 200
    assert _Ok.paths == ["http://api.example.invalid/"]


def test_the_environment_is_read_once_and_only_as_requests_reads_it(
        server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set after start, or one NO_PROXY excludes, is not used: the transport does not read
    the variables again."""
    http = HttpTransport(server)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    assert http.post(server, b"{}", {}, timeout=5).status == 200
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert HttpTransport(server).post(server, b"{}", {}, timeout=5).status == 200


def test_ca_bundle_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, name the CA file; else requests' default."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert transport.ca_bundle() == requests.utils.DEFAULT_CA_BUNDLE_PATH
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl.pem")
    assert transport.ca_bundle() == "/etc/curl.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    assert transport.ca_bundle() == "/etc/ca.pem"
    assert HttpTransport("https://trtc.tencentcloudapi.com").ca_bundle == "/etc/ca.pem"


class _Tunnel(BaseHTTPRequestHandler):
    """A CONNECT proxy: opens the named host:port and relays bytes both ways until either side
    closes; records what it was asked to connect to."""

    targets: ClassVar[list[str]] = []

    def do_CONNECT(self) -> None:
        self.targets.append(self.path)
        host, port = self.path.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as upstream:
            self.send_response_only(200)
            self.end_headers()
            self.wfile.flush()
            sockets = [self.connection, upstream]
            while data_ready := select.select(sockets, [], [], 5)[0]:
                for ready in data_ready:
                    chunk = ready.recv(65536)
                    if not chunk:
                        return
                    (upstream if ready is self.connection else self.connection).sendall(chunk)

    def log_message(self, *args: object) -> None:
        return


def test_https_goes_through_the_proxy_tunnel_verified(tls_server: tuple[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTPS_PROXY set, an https request goes through a CONNECT tunnel to the endpoint,
    TLS verified end to end, and its write is reported."""
    url, crt = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(crt))
    _Tunnel.targets.clear()
    calls: list[int] = []
    for proxy in _serve(_Tunnel):
        monkeypatch.setenv("HTTPS_PROXY", proxy.rstrip("/").removeprefix("http://"))
        http = HttpTransport(url)
        assert http.proxy == proxy.rstrip("/")
        with transport.on_written(lambda: calls.append(1)):
            assert http.post(url, b"{}", {}, timeout=5).body == b"{}"
        assert calls == [1]
        assert _Tunnel.targets == [url.removeprefix("https://").rstrip("/")]


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 under a self-signed certificate: (url, its certificate)."""
    crt, key = self_signed(tmp_path)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    httpd.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{httpd.server_address[1]}/", crt
    httpd.shutdown()
    httpd.server_close()


def test_an_untrusted_certificate_is_refused(tls_server: tuple[str, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS is verified: a certificate no trusted CA signed fails the request; naming it in
    REQUESTS_CA_BUNDLE makes the same server trusted."""
    url, crt = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(TransportError) as failure:
        HttpTransport(url).post(url, b"{}", {}, timeout=5)
    assert failure.value.code == "ConnectionError"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(crt))
    assert HttpTransport(url).post(url, b"{}", {}, timeout=5).body == b"{}"


def test_a_slow_connect_leaves_the_tls_handshake_only_the_rest_of_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The TCP connect and the TLS handshake share the attempt's timeout: after a connect that
    took most of it, a server that never answers the handshake ends the attempt at the
    timeout (Timeout), not a whole timeout later as http.client allowed."""
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, never speaks TLS
    url = f"https://127.0.0.1:{listener.getsockname()[1]}/"
    real = socket.create_connection

    def slow(address: tuple[str, int], *args: object) -> socket.socket:
        time.sleep(0.6)  # a slow network: the connect takes 0.6 s of the 0.8 s
        return real(address, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(transport.socket, "create_connection", slow)
    try:
        started = time.monotonic()
        with pytest.raises(TransportError) as failure:
            HttpTransport(url).post(url, b"{}", {}, timeout=0.8)
        took = time.monotonic() - started
    finally:
        listener.close()
    assert failure.value.code == "Timeout"
    assert took < 1.2  # the whole timeout again for the handshake: 1.4 s


def test_an_attempt_past_its_deadline_does_not_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connect asked for after the attempt's deadline is a Timeout without any connect."""
    connects: list[object] = []
    monkeypatch.setattr(transport.socket, "create_connection",
                        lambda *args: connects.append(args))
    with pytest.raises(TransportError) as failure:
        HttpTransport("http://127.0.0.1:9/").post("http://127.0.0.1:9/", b"{}", {}, timeout=0.0)
    assert failure.value.code == "Timeout" and connects == []
