"""The pooled session reports each request's write before its answer is awaited."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trtc_exporter.api import transport


class _SlowAnswer(BaseHTTPRequestHandler):
    """Reads the request, then answers only once the test has seen the write reported."""

    written = threading.Event()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        assert self.written.wait(5)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        return


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
    session = transport.pooled_session(server)

    def written() -> None:
        calls.append("written")
        _SlowAnswer.written.set()  # the server answers only after this

    with transport.on_written(written):
        response = session.post(server, data=b'{"a": 1}', timeout=10)
    assert response.status_code == 200
    assert calls == ["written"]


def test_callback_is_disarmed_after_the_block(server: str) -> None:
    """A request outside on_written calls nothing (the callback fires at most once)."""
    _SlowAnswer.written.set()
    calls: list[int] = []
    session = transport.pooled_session(server)
    with transport.on_written(lambda: calls.append(1)):
        session.post(server, data=b"{}", timeout=10)
    session.post(server, data=b"{}", timeout=10)
    assert calls == [1]
