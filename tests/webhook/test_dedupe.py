"""The duplicate filter: once per key within the TTL, bounded memory under a flood."""

from __future__ import annotations

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.webhook.dedupe import Deduper


def test_a_key_is_new_once_within_the_ttl() -> None:
    """The first sighting is new; repeats inside ten minutes are not."""
    clock = FakeClock()
    seen = Deduper(clock)
    assert seen.first_time(("app", 901, "t", 1))
    clock.advance(599)
    assert not seen.first_time(("app", 901, "t", 1))
    assert seen.first_time(("app", 902, "t", 1))


def test_a_key_is_new_again_after_the_ttl() -> None:
    """After the TTL the key is forgotten and memory is freed."""
    clock = FakeClock()
    seen = Deduper(clock, ttl=600)
    seen.first_time("k")
    clock.advance(600)
    assert seen.first_time("other")
    assert len(seen) == 1
    assert seen.first_time("k")


def test_a_flood_keeps_memory_bounded_and_counts_evictions() -> None:
    """Beyond max_entries the oldest keys are forgotten early and counted."""
    seen = Deduper(FakeClock(), max_entries=100)
    for i in range(250):
        assert seen.first_time(i)
    assert len(seen) == 100
    assert seen.evicted == 150
    assert seen.first_time(0)  # forgotten early: would be applied again
    assert not seen.first_time(249)


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (10, 0)])
def test_nonsense_bounds_are_refused(ttl: float, size: int) -> None:
    """A zero TTL or zero capacity is a programming error, raised at construction."""
    with pytest.raises(ValueError, match="ttl"):
        Deduper(FakeClock(), ttl=ttl, max_entries=size)


def test_set_ttl_applies_to_keys_seen_afterwards() -> None:
    """A longer TTL keeps new keys longer; keys already held keep their expiry; 0 is refused."""
    clock = FakeClock()
    seen = Deduper(clock, ttl=600)
    seen.first_time("old")
    seen.set_ttl(3600)
    seen.first_time("new")
    clock.advance(1800)
    assert seen.first_time("old")
    assert not seen.first_time("new")
    with pytest.raises(ValueError):
        seen.set_ttl(0)


def test_a_shorter_ttl_never_forgets_a_key_early() -> None:
    """After a shorter set_ttl an earlier, longer-lived key still shields the later ones only
    by keeping them longer, never by dropping one before its time."""
    clock = FakeClock()
    seen = Deduper(clock, ttl=3600)
    seen.first_time("long")
    seen.set_ttl(600)
    seen.first_time("short")
    clock.advance(599)
    assert not seen.first_time("short") and not seen.first_time("long")
    clock.advance(3001)
    assert seen.first_time("long") and seen.first_time("short")
