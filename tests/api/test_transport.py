"""The pooled transport reports each request's write before its answer is awaited, keeps its
connection alive, and reads proxy and CA settings from the environment."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import requests
import urllib3

from tests.coordination.conftest import self_signed
from trtc_exporter.api import transport


class _Ok(BaseHTTPRequestHandler):
    """Reads the request and answers 200 ``{}`` on the kept-alive connection."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.before_answer()
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def before_answer(self) -> None:
        """Called once the request is read, before the answer is sent."""

    def log_message(self, *args: object) -> None:
        return


class _SlowAnswer(_Ok):
    """Reads the request, then answers only once the test has seen the write reported."""

    written = threading.Event()
    peers: ClassVar[list[tuple[str, int]]] = []

    def before_answer(self) -> None:
        self.peers.append(self.client_address)
        assert self.written.wait(5)


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _SlowAnswer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_written_callback_fires_before_the_answer(server: str) -> None:
    """The callback runs once the body is sent, while the server still holds its answer."""
    _SlowAnswer.written.clear()
    calls: list[str] = []
    pool = transport.pool_manager(server)

    def written() -> None:
        calls.append("written")
        _SlowAnswer.written.set()  # the server answers only after this

    with transport.on_written(written):
        response = transport.post(pool, server, b'{"a": 1}', {}, timeout=10)
    assert response.status == 200
    assert response.read() == b"{}"
    assert calls == ["written"]


def test_callback_is_disarmed_after_the_block(server: str) -> None:
    """A request outside on_written calls nothing (the callback fires at most once)."""
    _SlowAnswer.written.set()
    calls: list[int] = []
    pool = transport.pool_manager(server)
    with transport.on_written(lambda: calls.append(1)):
        transport.post(pool, server, b"{}", {}, timeout=10).read()
    transport.post(pool, server, b"{}", {}, timeout=10).read()
    assert calls == [1]


def test_connection_is_kept_alive(server: str) -> None:
    """Answers read to their end give the connection back: two requests, one connection."""
    _SlowAnswer.written.set()
    _SlowAnswer.peers.clear()
    pool = transport.pool_manager(server)
    for _ in range(2):
        response = transport.post(pool, server, b"{}", {}, timeout=10)
        response.read()
        response.release_conn()
    assert len(_SlowAnswer.peers) == 2
    assert _SlowAnswer.peers[0] == _SlowAnswer.peers[1]


def test_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to an https endpoint unless NO_PROXY names its host."""
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    endpoint = "https://trtc.tencentcloudapi.com"
    assert transport.proxy_for(endpoint) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert transport.proxy_for(endpoint) == "http://proxy.internal:3128"
    assert isinstance(transport.pool_manager(endpoint), urllib3.ProxyManager)
    monkeypatch.setenv("NO_PROXY", "tencentcloudapi.com")
    assert transport.proxy_for(endpoint) is None
    assert not isinstance(transport.pool_manager(endpoint), urllib3.ProxyManager)


def test_ca_bundle_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, name the CA file; else requests' default."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    assert transport.ca_bundle() == requests.utils.DEFAULT_CA_BUNDLE_PATH
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/curl.pem")
    assert transport.ca_bundle() == "/etc/curl.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ca.pem")
    assert transport.ca_bundle() == "/etc/ca.pem"
    pool = transport.pool_manager("https://trtc.tencentcloudapi.com")
    assert pool.connection_pool_kw["ca_certs"] == "/etc/ca.pem"


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on 127.0.0.1 under a self-signed certificate: (url, its certificate)."""
    crt, key = self_signed(tmp_path)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
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
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(urllib3.exceptions.SSLError):
        transport.post(transport.pool_manager(url), url, b"{}", {}, timeout=5)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(crt))
    response = transport.post(transport.pool_manager(url), url, b"{}", {}, timeout=5)
    assert (response.status, response.read()) == (200, b"{}")
