"""The landing page's inline SVG: the last hour's status strip and the budget bar."""

from __future__ import annotations

from trtc_exporter.web.svg import WINDOW_SECONDS, budget_bar, segments, status_strip

NOW = 1_795_514_400.0


def test_segments_cover_the_last_hour() -> None:
    """Before the first transition the strip is Unknown; each transition starts a segment."""
    history = ((NOW - 1800, "Idle"), (NOW - 600, "InProgress"))
    assert segments(history, NOW, None) == [(NOW - WINDOW_SECONDS, NOW - 1800, "Unknown"),
                                            (NOW - 1800, NOW - 600, "Idle"),
                                            (NOW - 600, NOW, "InProgress")]


def test_status_before_the_window_opens_it() -> None:
    """A transition older than an hour gives the status at the window's start."""
    assert segments(((NOW - 7200, "InProgress"),), NOW, None) == [
        (NOW - WINDOW_SECONDS, NOW, "InProgress")]


def test_stale_tail_turns_unknown() -> None:
    """From stale_since on, the strip shows Unknown, as the metrics do."""
    got = segments(((NOW - 1800, "InProgress"),), NOW, NOW - 300)
    assert got[-1] == (NOW - 300, NOW, "Unknown")
    assert got[-2] == (NOW - 1800, NOW - 300, "InProgress")


def test_strip_says_in_words_what_it_draws() -> None:
    """The strip is an img with an aria-label naming each status and uses no style attribute."""
    svg = status_strip(((NOW - 600, "InProgress"),), NOW, None)
    assert 'role="img"' in svg and "InProgress from" in svg and "style" not in svg


def test_budget_bar_is_full_and_red_over_the_limit() -> None:
    """Demand above the limit fills the bar in red; the label gives the share."""
    svg = budget_bar(30, 20, 20, width=100)
    assert 'width="100.0"' in svg and "#d0453a" in svg and "150%" in svg
