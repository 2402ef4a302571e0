"""The due queue: earliest first, stale entries skipped, peeking leaves the queue as it was."""

from __future__ import annotations

from trtc_exporter.polling.due import Schedule


def test_peek_shows_the_earliest_live_entry_and_takes_nothing() -> None:
    """peek skips a rescheduled key's stale entry and leaves the queue unchanged."""
    schedule = Schedule()
    schedule.set(("a",), 5.0)
    schedule.set(("b",), 3.0)
    schedule.set(("b",), 7.0)  # b's 3.0 entry is now stale
    assert schedule.peek() == (5.0, ("a",))
    assert schedule.peek() == (5.0, ("a",))
    assert len(schedule) == 2
    assert schedule.pop_due(10.0) == [(("a",), 5.0), (("b",), 7.0)]
    assert schedule.peek() is None
