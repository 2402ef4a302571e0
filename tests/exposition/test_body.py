"""/metrics from the exposition is the reference registry's rendering, in every format."""

from __future__ import annotations

import pytest

from tests.apimock import ApiMock
from tests.conftest import ENDPOINT, build_exporter, poll_all
from tests.exposition.test_collectors import TARGETS, _respond
from trtc_exporter.clock import FakeClock
from trtc_exporter.web.negotiation import choose_format

ACCEPTS = ["", "text/plain; version=1.0.0; escaping=allow-utf-8",
           "application/openmetrics-text; version=1.0.0",
           "application/openmetrics-text; version=1.0.0; escaping=dots",
           "application/openmetrics-text; version=abc"]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_body_equals_the_reference_registry(accept: str) -> None:
    """Joined pieces equal client_python's encoding of the full registry in that format."""
    clock = FakeClock(auto_advance=True)
    with ApiMock() as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=_respond)
        exporter = build_exporter(TARGETS, clock)
        poll_all(exporter)
    encoder, _ = choose_format(accept)
    fast = b"".join(exporter.exposition.render(encoder))
    reference = encoder(exporter.registry)
    process = (b"process_", b"# HELP process_", b"# TYPE process_")  # CPU time moves between
    assert [x for x in fast.splitlines() if not x.startswith(process)] == [
        x for x in reference.splitlines() if not x.startswith(process)]


def test_a_broken_snapshot_still_serves_exporter_health() -> None:
    """A failing task render leaves the task families out and keeps the rest (no 500)."""
    exporter = build_exporter(TARGETS)
    exporter.store.snapshot = lambda: [object()]  # type: ignore[method-assign, return-value, list-item]
    encoder, _ = choose_format("")
    text = b"".join(exporter.exposition.render(encoder))
    assert b"trtc_exporter_build_info" in text
    assert b"trtc_ai_transcription_status{" not in text


@pytest.mark.parametrize("accept", ACCEPTS)
def test_stream_has_the_bytes_of_render_in_small_pieces(accept: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The streamed body (two targets per piece here) joins to the rendered one, byte for byte."""
    from trtc_exporter.exposition import fragments

    monkeypatch.setattr(fragments, "BLOCK", 2)
    clock = FakeClock(auto_advance=True)
    with ApiMock() as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=_respond)
        exporter = build_exporter(TARGETS, clock)
        poll_all(exporter)
    encoder, _ = choose_format(accept)
    clock.advance(0)  # both renders see the same instant (running_seconds)
    rendered = b"".join(exporter.exposition.render(encoder))
    pieces = list(exporter.exposition.stream(encoder))
    joined = b"".join(pieces)
    process = (b"process_", b"# HELP process_", b"# TYPE process_")
    assert [x for x in joined.splitlines() if not x.startswith(process)] == [
        x for x in rendered.splitlines() if not x.startswith(process)]
    if "dots" not in accept:
        assert len(pieces) > 9  # the task section came in more than one piece per family


def test_a_broken_snapshot_still_streams_exporter_health() -> None:
    """A failing snapshot on the streamed path also leaves only the task families out."""
    exporter = build_exporter(TARGETS)
    exporter.store.snapshot = lambda: [object()]  # type: ignore[method-assign, return-value, list-item]
    encoder, _ = choose_format("")
    text = b"".join(exporter.exposition.stream(encoder))
    assert b"trtc_exporter_build_info" in text
    assert b"trtc_ai_transcription_status{" not in text
