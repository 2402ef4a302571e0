"""Membership heartbeats against a real redis-server, and rendezvous ownership."""

from __future__ import annotations

import time

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from trtc_exporter.clock import FakeClock, SystemClock
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.membership import Membership
from trtc_exporter.coordination.ownership import owned, owner


def member(rdb: redis.Redis, name: str, clock: FakeClock, ttl: float = 15.0) -> Membership:
    return Membership(rdb, Keys("t"), name, ttl, clock, fake_now=True)


def test_members_see_each_other_until_one_misses_its_ttl(rdb: redis.Redis) -> None:
    """A member that stops heartbeating leaves the live list once its TTL passed."""
    clock = FakeClock()
    a, b = member(rdb, "a", clock), member(rdb, "b", clock)
    a.beat()
    assert b.beat() == ["a", "b"]
    clock.advance(10)
    assert b.beat() == ["a", "b"]
    clock.advance(6)  # a's last beat is 16 s old, b's 6 s
    assert b.beat() == ["b"]


def test_leave_removes_a_member_at_once(rdb: redis.Redis) -> None:
    """A clean shutdown does not make the others wait for the TTL."""
    clock = FakeClock()
    a, b = member(rdb, "a", clock), member(rdb, "b", clock)
    a.beat()
    b.beat()
    a.leave()
    assert b.live() == ["b"]


@pytest.mark.integration
def test_the_ttl_runs_on_the_redis_clock(rdb: redis.Redis) -> None:
    """With server time, a member with a 0.2 s TTL is gone 0.3 s after its beat."""
    clock = SystemClock()
    a = Membership(rdb, Keys("t"), "a", 0.2, clock)
    b = Membership(rdb, Keys("t"), "b", 5.0, clock)
    a.beat()
    assert b.beat() == ["a", "b"]
    time.sleep(0.3)
    assert b.beat() == ["b"]


names = st.lists(st.text("abcdefgh", min_size=1, max_size=6), min_size=2, max_size=8,
                 unique=True)
keys = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True)


@given(names, keys, st.data())
def test_removing_a_member_moves_only_its_own_keys(members: list[str], targets: list[str],
                                                   data: st.DataObject) -> None:
    """After a member dies, every key it did not own keeps its owner."""
    dead = data.draw(st.sampled_from(members))
    rest = [m for m in members if m != dead]
    for key in targets:
        before = owner(key, members)
        after = owner(key, rest)
        assert after in rest
        if before != dead:
            assert after == before


@given(names, keys, st.text("xyz", min_size=1, max_size=4))
def test_adding_a_member_moves_keys_only_to_it(members: list[str], targets: list[str],
                                              new: str) -> None:
    """A joining member takes keys, but no key moves between the old members."""
    grown = sorted(set(members) | {new})
    for key in targets:
        after = owner(key, grown)
        assert after in (owner(key, members), new)


@given(names, keys)
def test_every_key_has_exactly_one_owner(members: list[str], targets: list[str]) -> None:
    """The members' owned lists partition the keys."""
    shares = [owned(targets, members, m) for m in members]
    assert sorted(k for share in shares for k in share) == sorted(targets)


def test_no_members_own_nothing() -> None:
    """An empty member list has no owner for any key."""
    assert owner("k", []) is None
