"""Accept and Accept-Encoding read as RFC 9110 defines them, with the strings real clients send."""

from __future__ import annotations

import pytest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from trtc_exporter.web.negotiation import accepts_gzip, choose_format, parse_list

PROMETHEUS_2 = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
PROMETHEUS_3 = ("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
                "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;"
                "escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
PROMETHEUS_3_TEXT_FIRST = ("text/plain;version=0.0.4;q=0.6,application/openmetrics-text;"
                           "version=1.0.0;q=0.5,*/*;q=0.2")
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
OPENMETRICS = "application/openmetrics-text"


@pytest.mark.parametrize(("accept", "kind"), [
    ("", "text"), ("*/*", "text"), (BROWSER, "text"),  # curl, browsers
    (PROMETHEUS_2, OPENMETRICS), (PROMETHEUS_3, OPENMETRICS),
    (PROMETHEUS_3_TEXT_FIRST, "text"),
    ("Application/OpenMetrics-Text; Version=1.0.0", OPENMETRICS),  # case-insensitive type
    ("application/openmetrics-text;version=1.0.0;q=0, text/plain", "text"),  # q=0: refused
    ("text/plain;q=0.1, application/openmetrics-text;q=0.9", OPENMETRICS),  # q, not order
    ("application/openmetrics-text;version=abc, text/plain", "text"),  # bad version skipped
    ("application/openmetrics-text;version=0.0.1", "text"),  # a version we cannot serve
    ("application/openmetrics-text;version=1.0.0;q=abc, text/plain;q=0.1", "text"),  # bad q
    ("application/openmetrics-text;version=1.0.0;q=1.5", "text"),  # q above 1: ignored
])
def test_choose_format(accept: str, kind: str) -> None:
    """The format with the highest acceptable q that client_python can write wins."""
    _, content_type = choose_format(accept)
    if kind == "text":
        assert content_type.startswith("text/plain")
    else:
        assert content_type.startswith(OPENMETRICS)


def test_text_is_the_default() -> None:
    """Without an Accept header the classic text format 0.0.4 is served."""
    assert choose_format("")[1] == CONTENT_TYPE_PLAIN_0_0_4


@pytest.mark.parametrize(("header", "expected"), [
    ("gzip", True), ("x-gzip", True), ("deflate, gzip;q=0.5", True), ("Gzip", True),
    ("gzip;q=0", False), ("gzip;q=0.000, identity", False), ("identity", False),
    ("*", True), ("*;q=0", False), ("gzip;q=0, *;q=1", False), ("br", False), ("", False),
    ("gzip;q=1.000", True), ("gzip;q=0.001", True), ("gzip;Q=0.5", True), ("gzip; q=0.5", True),
    # an invalid qvalue (RFC 9110 12.4.2) makes the element invalid: it is ignored
    ("gzip;q=bogus", False), ("gzip;q=abc", False), ("gzip;q=1.5", False),
    ("gzip;q=0.5000", False), ("gzip;q=-1", False), ("gzip;q=.5", False),
    ("gzip;q=1.001", False), ("gzip;q=nan", False), ("gzip;q=", False), ("gzip;q=2", False),
    ("gzip;q=0.", False),  # a valid qvalue: 0
    ("gzip;q=abc, *", True), ("gzip;q=abc, x-gzip;q=0", False),
])
def test_accepts_gzip(header: str, expected: bool) -> None:
    """gzip only when acceptable: listed with a valid q > 0, or not listed and * has q > 0."""
    assert accepts_gzip(header) is expected


def test_parse_list_orders_by_q_then_position() -> None:
    """Entries come best first, ties keep their order, q=0 entries are dropped."""
    assert [v for v, _, _ in parse_list("a;q=0.5, B, c;q=0, d;q=0.5")] == ["b", "a", "d"]


def test_an_element_with_an_invalid_qvalue_is_dropped() -> None:
    """parse_list leaves out elements whose q is not a qvalue, keeping the valid ones."""
    assert [v for v, _, _ in parse_list("a;q=0.5000, b;q=1.0, c;q=x, d")] == ["b", "d"]
