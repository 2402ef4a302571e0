"""Prometheus duration strings: the grammar, the range, formatting and the round trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trtc_exporter.durations import (
    MAX_MILLISECONDS,
    DurationError,
    format_duration,
    parse_duration,
)

UNITS = [("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
         ("m", 60_000), ("s", 1000), ("ms", 1)]


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("0s", 0.0), ("500ms", 0.5), ("15s", 15.0), ("1m", 60.0), ("1h30m", 5400.0),
    ("1d", 86400.0), ("1w", 604800.0), ("1y", 31536000.0), ("1m30s500ms", 90.5),
    ("90s", 90.0), ("015s", 15.0), ("1y2w3d4h5m6s7ms", 31536000 + 2 * 604800 + 3 * 86400
                                                     + 4 * 3600 + 5 * 60 + 6.007),
])
def test_valid_durations(text: str, seconds: float) -> None:
    """Prometheus duration strings parse to seconds."""
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", [
    "", "15", "1.5s", "-1s", "+1s", "1S", "1 s", " 15s", "15s ", "15s\n", "30s1m", "1h1h",
    "1ms1s", "1sec", "1µs", "1ns", "\u0661\u0665s", "0.0", "s", "ms", "1m1", "00",
])
def test_invalid_durations(text: str) -> None:
    """Anything outside Prometheus' grammar is a DurationError naming the text."""
    with pytest.raises(DurationError, match="not a valid duration string"):
        parse_duration(text)


def test_range_is_prometheus_range() -> None:
    """Up to 2^63-1 ns (about 292 years) parses; one millisecond more is out of range."""
    assert parse_duration(f"{MAX_MILLISECONDS}ms") == MAX_MILLISECONDS / 1000
    assert parse_duration("292y") == 292 * 31536000
    for text in (f"{MAX_MILLISECONDS + 1}ms", "293y", "9" * 5000 + "s"):
        with pytest.raises(DurationError, match="duration out of range"):
            parse_duration(text)


def test_messages_are_short_single_lines() -> None:
    """Error messages shorten long input and escape control characters."""
    with pytest.raises(DurationError) as caught:
        parse_duration("x" * 1000 + "\n")
    assert len(str(caught.value)) < 100
    with pytest.raises(DurationError) as caught:
        parse_duration("1s\r\n")
    assert "\n" not in str(caught.value) and "\r" not in str(caught.value)


def test_duration_error_is_a_value_error() -> None:
    """DurationError subclasses ValueError for callers that catch that."""
    assert issubclass(DurationError, ValueError)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (0.0004, "0s"), (0.0005, "0s"), (0.5, "500ms"), (15, "15s"), (90, "1m30s"),
    (90.5, "1m30s500ms"), (3600, "1h"), (8 * 86400, "1w1d"), (366 * 86400, "1y1d"),
    (-90, "-1m30s"), (15.3333, "15s333ms"),
])
def test_format_duration(seconds: float, text: str) -> None:
    """Seconds print like Prometheus durations, rounded to milliseconds; tiny values print 0s."""
    assert format_duration(seconds) == text


def test_format_non_finite_does_not_raise() -> None:
    """NaN and infinities print as text instead of raising."""
    assert (format_duration(math.nan), format_duration(math.inf)) == ("nan", "inf")


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40) | st.from_regex(r"[0-9]{1,25}(y|w|d|h|m|s|ms)([0-9]{1,3}ms)?",
                                                 fullmatch=True))
def test_parser_raises_only_duration_error(text: str) -> None:
    """On arbitrary text the parser returns a finite, non-negative float or raises DurationError."""
    try:
        seconds = parse_duration(text)
    except DurationError:
        return
    assert math.isfinite(seconds) and seconds >= 0


durations = st.lists(st.integers(min_value=0, max_value=400), min_size=7, max_size=7).map(
    lambda counts: "".join(f"{n}{unit}" for n, (unit, _) in zip(counts, UNITS, strict=True) if n)
    or "0s")


@settings(max_examples=300, deadline=None)
@given(text=durations)
def test_round_trip_through_format(text: str) -> None:
    """format_duration(parse_duration(x)) parses back to the same value, for any valid x."""
    try:
        seconds = parse_duration(text)
    except DurationError:  # hundreds of years can exceed the range
        return
    assert parse_duration(format_duration(seconds)) == seconds


@settings(max_examples=300, deadline=None)
@given(millis=st.integers(min_value=0, max_value=MAX_MILLISECONDS))
def test_canonical_text_is_a_fixed_point(millis: int) -> None:
    """For every representable duration the printed form parses back and prints identically."""
    text = format_duration(millis / 1000)
    assert parse_duration(text) == millis / 1000
    assert format_duration(parse_duration(text)) == text
