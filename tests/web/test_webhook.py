"""The callback listener: only POST /webhook/trtc, size cap before the body, clear answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.webhook.helpers import KEY, NOW, body, headers
from tests.webhook.test_hub import Sink
from trtc_exporter.clock import FakeClock
from trtc_exporter.web.webhook import make_webhook_server
from trtc_exporter.webhook.events import MAX_BODY_BYTES
from trtc_exporter.webhook.hub import WebhookHub
from trtc_exporter.webhook.keys import KeyRing


@pytest.fixture
def served() -> Iterator[tuple[str, WebhookHub, Sink]]:
    sink = Sink()
    hub = WebhookHub(KeyRing(KEY), sink, FakeClock(NOW), max_age=600.0)
    server = make_webhook_server("127.0.0.1:0", hub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hub, sink
    finally:
        server.shutdown()
        server.server_close()


def session() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


def test_a_signed_callback_gets_200_code_0(served: tuple[str, WebhookHub, Sink]) -> None:
    """TRTC's recommended answer body, and the effect applied."""
    url, _, sink = served
    raw = body()
    answer = session().post(url + "/webhook/trtc", data=raw, headers=headers(raw), timeout=5)
    assert (answer.status_code, answer.json()) == (200, {"code": 0})
    assert len(sink.effects) == 1


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/webhook/trtc"), ("POST", "/metrics"), ("GET", "/"), ("PUT", "/webhook/trtc"),
    ("POST", "/webhook/trtc/x"), ("DELETE", "/-/reload"), ("HEAD", "/webhook/trtc")])
def test_everything_else_is_404(served: tuple[str, WebhookHub, Sink], method: str,
                                path: str) -> None:
    """The internet-facing listener serves one endpoint; every other method or path is 404."""
    url, hub, _ = served
    answer = session().request(method, url + path, data=b"{}", timeout=5)
    assert answer.status_code == 404
    assert sum(hub.stats().requests.values()) == 0


def test_a_forged_signature_is_403_and_counted(served: tuple[str, WebhookHub, Sink]) -> None:
    """A wrong Sign: 403 naming the problem, nothing applied."""
    url, hub, sink = served
    raw = body()
    forged = {**headers(raw), "Sign": headers(body(task="x"))["Sign"]}
    answer = session().post(url + "/webhook/trtc", data=raw, headers=forged, timeout=5)
    assert answer.status_code == 403 and "Sign" in answer.json()["error"]
    assert sink.effects == [] and hub.stats().requests["bad_signature"] == 1


def test_an_oversized_content_length_is_refused_before_the_body(
        served: tuple[str, WebhookHub, Sink]) -> None:
    """413 is answered to the headers alone: the body is never sent, let alone read."""
    url, hub, _ = served
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"POST /webhook/trtc HTTP/1.1\r\nHost: x\r\nSdkAppId: 1\r\n"
                     b"Content-Length: %d\r\n\r\n" % (MAX_BODY_BYTES + 1))
        reply = conn.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413") and b"Connection: close" in reply
    assert hub.stats().requests["too_large"] == 1


def test_a_body_without_content_length_is_411(served: tuple[str, WebhookHub, Sink]) -> None:
    """Chunked uploads are refused: the cap is enforced on Content-Length."""
    url, hub, _ = served
    answer = session().post(url + "/webhook/trtc", data=iter([b"{}"]), timeout=5)
    assert answer.status_code == 411 and hub.stats().requests["bad_request"] == 1
