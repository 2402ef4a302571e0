"""HTTP endpoints served by a real server on 127.0.0.1, answering from the poller's cache."""

from __future__ import annotations

import dataclasses
import gzip
import json
import threading
from collections.abc import Iterator

import pytest
import requests

from tests.apimock import ApiMock, Sent
from tests.conftest import (
    ENDPOINT,
    SECRET_ID,
    SECRET_KEY,
    answer,
    api_error,
    build_exporter,
    poll_all,
)
from trtc_exporter.allocator import Allocator
from trtc_exporter.app import Exporter
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.static import LANDING_CSP
from trtc_exporter.web.toolkit.server import ExporterHTTPServer

RAW = {"targets": [{"task_id": "t-1"}, {"task_id": "t-2"},
                   {"sdk_app_id": 1400000001, "session_id": "<script>alert(1)</script>"}]}


@pytest.fixture
def served() -> Iterator[tuple[str, Exporter]]:
    exporter = build_exporter(RAW)
    table = {"t-1": answer("InProgress", "t-1"), "t-2": api_error("FailedOperation.TaskNotExist"),
             "": answer("Idle", "resolved")}

    def respond(request: Sent) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(table[json.loads(request.body or b"{}")["TaskId"]])

    with ApiMock() as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=respond)
        poll_all(exporter)
    server = ExporterHTTPServer(("127.0.0.1", 0), handler_class(Routes(exporter, "/metrics")), None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", exporter
    server.shutdown()
    server.server_close()


def test_metrics_plain_openmetrics_and_gzip(served: tuple[str, Exporter]) -> None:
    """/metrics negotiates OpenMetrics and gzip like client_python's own handler."""
    base, _ = served
    plain = requests.get(base + "/metrics", timeout=5)
    assert plain.status_code == 200
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert 'trtc_ai_transcription_status{' in plain.text
    om = requests.get(base + "/metrics", headers={"Accept": "application/openmetrics-text"},
                      timeout=5)
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert om.text.rstrip().endswith("# EOF")
    raw = requests.get(base + "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True,
                       timeout=5)
    assert raw.headers["Content-Encoding"] == "gzip"
    assert b"trtc_exporter_build_info" in gzip.decompress(raw.raw.read())


def test_landing_page_escapes_and_hides_secrets(served: tuple[str, Exporter]) -> None:
    """The landing page lists targets with HTML escaped and never shows credentials."""
    base, _ = served
    page = requests.get(base + "/", timeout=5)
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(1)" not in page.text
    assert SECRET_KEY not in page.text and SECRET_ID not in page.text
    assert "Credentials from: env" in page.text
    assert 'href="/metrics"' in page.text


def test_targets_json(served: tuple[str, Exporter]) -> None:
    """/api/v1/targets lists status, RequestId, error code, latency and next poll per target."""
    base, _ = served
    doc = requests.get(base + "/api/v1/targets", timeout=5).json()
    rows = {r["task_id"] or r["session_id"]: r for r in doc["data"]}
    assert rows["t-1"]["status"] == "InProgress"
    assert rows["t-1"]["request_id"] == "req-t-1"
    assert rows["t-2"]["status"] == "NotFound"
    assert rows["t-2"]["last_error_code"] == "FailedOperation.TaskNotExist"
    assert rows["t-1"]["next_poll_in_seconds"] is not None
    assert set(rows["t-1"]) >= {"latency_seconds", "source", "age_seconds", "id"}


def test_health_and_readiness(served: tuple[str, Exporter]) -> None:
    """Healthy while no poll is overdue; ready only after the first full cycle, with a JSON
    reason while not."""
    base, exporter = served
    assert requests.get(base + "/-/healthy", timeout=5).status_code == 200
    assert requests.get(base + "/-/ready", timeout=5).status_code == 200  # all polled once
    exporter.poller.stats.ready = False
    answer = requests.get(base + "/-/ready", timeout=5)
    assert answer.status_code == 503
    assert answer.json() == {"ready": False, "reason": "first poll cycle not done yet"}
    exporter.clock.advance(3600)  # type: ignore[attr-defined]  # a FakeClock: nothing polled
    assert requests.get(base + "/-/healthy", timeout=5).status_code == 503


def test_probe_answers_from_cache(served: tuple[str, Exporter]) -> None:
    """/probe returns probe_success and only the probed target's series."""
    base, _ = served
    text = requests.get(base + "/probe", params={"task_id": "t-1"}, timeout=5).text
    assert "probe_success 1.0" in text
    assert 'task_id="t-1"' in text and 't-2' not in text
    missing = requests.get(base + "/probe", params={"task_id": "nope"}, timeout=5).text
    assert "probe_success 0.0" in missing
    assert requests.get(base + "/probe", timeout=5).status_code == 400


def test_probe_returns_no_per_app_totals(served: tuple[str, Exporter]) -> None:
    """/probe carries only the probed target's task families: no app totals to double-count."""
    base, _ = served
    text = requests.get(base + "/probe", params={"task_id": "t-1"}, timeout=5).text
    samples = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert samples and all('task_id="t-1"' in line or line.startswith("probe_success")
                           for line in samples)
    for family in ("trtc_ai_transcription_tasks", "trtc_ai_transcription_in_progress_seconds",
                   "trtc_ai_transcription_translation_seconds",
                   "trtc_ai_transcription_concurrency_limit", "trtc_exporter_"):
        assert family not in text
    assert "trtc_ai_transcription_tasks{" in requests.get(base + "/metrics", timeout=5).text


def test_unknown_paths_and_methods(served: tuple[str, Exporter]) -> None:
    """Unknown paths are 404 and wrong methods 405, both in the one JSON error shape."""
    base, _ = served
    for response, status in ((requests.get(base + "/nope", timeout=5), 404),
                             (requests.delete(base + "/metrics", timeout=5), 405),
                             (requests.request("BREW", base + "/", timeout=5), 501)):
        assert response.status_code == status
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["status"] == "error" and response.json()["errors"]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_reload_needs_the_lifecycle_flag(served: tuple[str, Exporter], method: str) -> None:
    """Without --web.enable-lifecycle, /-/reload is 403 naming the flag (Prometheus' rule)."""
    base, _ = served
    response = requests.request(method, base + "/-/reload", timeout=5)
    assert response.status_code == 403
    assert "--web.enable-lifecycle" in response.json()["errors"][0]


def test_reload_with_the_lifecycle_flag_but_no_config_file_is_400(
        served: tuple[str, Exporter]) -> None:
    """With the flag, a reload in demo mode (no --config.file) is a 400 JSON error."""
    _, exporter = served
    server = ExporterHTTPServer(("127.0.0.1", 0),
                                handler_class(Routes(exporter, "/metrics", lifecycle=True)), None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = requests.post(f"http://127.0.0.1:{server.server_address[1]}/-/reload",
                                 timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 400
    assert response.json() == {"status": "error",
                               "errors": ["no --config.file to reload (demo mode)"]}


def test_server_header_is_the_product_name(served: tuple[str, Exporter]) -> None:
    """The Server header carries no trailing space."""
    base, _ = served
    assert requests.get(base + "/metrics", timeout=5).headers["Server"] == \
        "trtc-transcription-exporter"


@pytest.mark.parametrize(("accept_encoding", "gzipped"), [
    ("gzip", True), ("gzip, deflate, br", True),  # Go's http client, curl --compressed
    ("GZIP;Q=1.0", True), ("identity", False), ("gzip;q=0, identity", False),
    ("gzip;q=0.0", False), ("*", True), ("*;q=0", False), ("gzip;q=0, *", False),
    ("", False),
])
def test_gzip_follows_q_values(served: tuple[str, Exporter], accept_encoding: str,
                               gzipped: bool) -> None:
    """gzip is used only when Accept-Encoding makes it acceptable (RFC 9110 §12.5.3)."""
    base, _ = served
    response = requests.get(base + "/metrics", timeout=5,
                            headers={"Accept-Encoding": accept_encoding})
    assert (response.headers.get("Content-Encoding") == "gzip") is gzipped
    assert "trtc_exporter_build_info" in response.text


def test_metrics_is_200_when_rendering_breaks(served: tuple[str, Exporter]) -> None:
    """A failure inside task rendering still gives 200 with exporter health series."""
    base, exporter = served
    exporter.store.snapshot = lambda: [None]  # type: ignore[method-assign, list-item, return-value]
    response = requests.get(base + "/metrics", timeout=5)
    assert response.status_code == 200
    assert "trtc_exporter_build_info" in response.text
    json.dumps(response.headers.get("Content-Type"))


def test_landing_page_has_a_strict_csp_and_no_inline_code(served: tuple[str, Exporter]) -> None:
    """/ carries the strict CSP; its HTML has no inline script or style; both files are served."""
    base, _ = served
    page = requests.get(base + "/?status=InProgress&sort=age&order=desc&refresh=15", timeout=5)
    assert page.headers["Content-Security-Policy"] == LANDING_CSP
    assert "script-src 'self'" in LANDING_CSP and "unsafe-inline" not in LANDING_CSP
    assert "<style" not in page.text and "style=" not in page.text
    assert "<script>" not in page.text and "onclick" not in page.text
    assert '<meta http-equiv="refresh" content="15">' in page.text
    css = requests.get(base + "/static/landing.css", timeout=5)
    js = requests.get(base + "/static/landing.js", timeout=5)
    assert css.headers["Content-Type"].startswith("text/css") and "position:sticky" in css.text
    assert js.headers["Content-Type"].startswith("text/javascript") and "clipboard" in js.text


def test_landing_page_skips_a_bad_row(served: tuple[str, Exporter]) -> None:
    """A target whose record cannot be rendered is left out; the page still answers 200."""
    base, exporter = served
    bad = exporter.store.snapshot()[0]
    exporter.store.put(dataclasses.replace(bad, history=((1.0, "InProgress"), None)))  # type: ignore[arg-type]
    page = requests.get(base + "/", timeout=5)
    assert page.status_code == 200
    assert page.text.count('<tr data-status=') == len(RAW["targets"]) - 1


def test_gzip_pieces_is_one_gzip_member_of_the_whole() -> None:
    """Compressing piece by piece gives a gzip stream of the concatenation (empty pieces too)."""
    from trtc_exporter.web.routes import gzip_pieces

    pieces = [b"# HELP a\n", b"", b"a 1\n" * 5000, b"b 2\n"]
    assert gzip.decompress(b"".join(gzip_pieces(iter(pieces)))) == b"".join(pieces)


class _CountingAllocator(Allocator):
    """The process's allocator, counting trims."""

    def __init__(self) -> None:
        super().__init__(None)
        self.trims = 0

    def trim(self) -> bool:
        self.trims += 1
        return False


def test_each_metrics_rendering_is_followed_by_a_trim() -> None:
    """/metrics trims the allocator once per rendering (allocator.py says why); /probe not."""
    exporter = build_exporter({"targets": [{"task_id": "t-1"}]})
    allocator = _CountingAllocator()
    server = ExporterHTTPServer(("127.0.0.1", 0),
                                handler_class(Routes(exporter, "/metrics", allocator=allocator)),
                                None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        for encoding in ("gzip", "identity"):
            response = requests.get(base + "/metrics", headers={"Accept-Encoding": encoding},
                                    timeout=5)
            assert response.status_code == 200
        assert requests.get(base + "/probe?task_id=t-1", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    assert allocator.trims == 2
