"""/metrics from the exposition is the reference registry's rendering, in every format."""

from __future__ import annotations

import pytest
import responses
from prometheus_client.exposition import choose_encoder

from tests.conftest import ENDPOINT, build_exporter, poll_all
from tests.exposition.test_collectors import TARGETS, _respond
from trtc_exporter.clock import FakeClock

ACCEPTS = ["", "text/plain; version=1.0.0; escaping=allow-utf-8",
           "application/openmetrics-text; version=1.0.0",
           "application/openmetrics-text; version=1.0.0; escaping=dots",
           "application/openmetrics-text; version=abc"]


@pytest.mark.parametrize("accept", ACCEPTS)
def test_body_equals_the_reference_registry(accept: str) -> None:
    """Joined pieces equal client_python's encoding of the full registry, Content-Type too."""
    clock = FakeClock(auto_advance=True)
    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, ENDPOINT + "/", callback=_respond)
        exporter = build_exporter(TARGETS, clock)
        poll_all(exporter)
    pieces, content_type = exporter.exposition.render(accept)
    try:
        encoder, expected_type = choose_encoder(accept)
    except Exception:  # client_python raises TypeError on version=abc: the text format
        encoder, expected_type = choose_encoder("")
    assert (b"".join(pieces), content_type) == (encoder(exporter.registry), expected_type)


def test_a_broken_snapshot_still_serves_exporter_health() -> None:
    """A failing task render leaves the task families out and keeps the rest (no 500)."""
    exporter = build_exporter(TARGETS)
    exporter.store.snapshot = lambda: [object()]  # type: ignore[method-assign, return-value, list-item]
    text = b"".join(exporter.exposition.render("")[0])
    assert b"trtc_exporter_build_info" in text
    assert b"trtc_ai_transcription_status{" not in text
