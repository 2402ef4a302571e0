"""Basic-auth checks: Go's 72-byte rule, cached successes, bounded pool, per-client throttling."""

from __future__ import annotations

import threading
from types import MappingProxyType

import bcrypt

from trtc_exporter.clock import FakeClock
from trtc_exporter.secret import Secret
from trtc_exporter.web.toolkit.auth import (
    FAILURE_LIMIT,
    FAILURE_WINDOW_SECONDS,
    PER_CLIENT_CHECKS,
    BasicAuthenticator,
    Verdict,
)
from trtc_exporter.web.toolkit.webconfig import WebConfig

LONG = b"p" * 72 + b"-and-the-rest-htpasswd-ignored"
CONFIG = WebConfig(users=MappingProxyType({
    "alice": Secret(bcrypt.hashpw(b"pw-a", bcrypt.gensalt(rounds=4)).decode()),
    "long": Secret(bcrypt.hashpw(LONG[:72], bcrypt.gensalt(rounds=4)).decode())}), dummy_cost=4)


class Counting:
    """Real bcrypt, counted, optionally blocking until released (to hold a check in flight)."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self.gate = gate
        self.started = threading.Semaphore(0)

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        self.started.release()
        if self.gate is not None:
            self.gate.wait(5)
        return bcrypt.checkpw(password, hashed)


def test_a_password_longer_than_72_bytes_matches_its_first_72() -> None:
    """As Go's CompareHashAndPassword: the whole password matches a hash of its first 72 bytes."""
    auth = BasicAuthenticator()
    assert auth.verify(CONFIG, "long", LONG, "c")
    assert auth.verify(CONFIG, "long", LONG[:72], "c")
    assert not auth.verify(CONFIG, "long", LONG[:71], "c")


def test_the_checked_password_is_never_longer_than_72_bytes() -> None:
    """pyca/bcrypt 5 raises for > 72 bytes: the check always gets at most 72."""
    seen: list[int] = []
    auth = BasicAuthenticator(lambda p, h: seen.append(len(p)) or False)
    auth.verify(CONFIG, "alice", b"x" * 500, "c")
    assert seen == [72]


def test_failures_past_the_limit_are_throttled_without_bcrypt() -> None:
    """After FAILURE_LIMIT failures in the window an address gets THROTTLED and costs nothing."""
    clock, checkpw = FakeClock(), Counting()
    auth = BasicAuthenticator(checkpw, clock=clock)
    for _ in range(FAILURE_LIMIT):
        assert auth.check(CONFIG, "alice", b"wrong", "10.0.0.9") is Verdict.WRONG
    assert auth.check(CONFIG, "alice", b"pw-a", "10.0.0.9") is Verdict.THROTTLED
    assert checkpw.calls == FAILURE_LIMIT
    assert auth.check(CONFIG, "alice", b"pw-a", "10.0.0.1") is Verdict.OK  # others are not
    clock.advance(FAILURE_WINDOW_SECONDS + 1)
    assert auth.check(CONFIG, "alice", b"pw-a", "10.0.0.9") is Verdict.OK


def test_a_cached_login_passes_even_from_a_throttled_address() -> None:
    """A scraper that logged in once keeps working behind the same address as an attacker."""
    auth = BasicAuthenticator()
    assert auth.check(CONFIG, "alice", b"pw-a", "nat") is Verdict.OK
    for _ in range(FAILURE_LIMIT + 3):
        auth.check(CONFIG, "alice", b"wrong", "nat")
    assert auth.check(CONFIG, "alice", b"pw-a", "nat") is Verdict.OK


def test_unknown_users_count_as_failures() -> None:
    """Guessing user names is throttled like guessing passwords."""
    auth = BasicAuthenticator()
    for _ in range(FAILURE_LIMIT):
        assert auth.check(CONFIG, "mallory", b"x", "c") is Verdict.WRONG
    assert auth.check(CONFIG, "mallory", b"x", "c") is Verdict.THROTTLED


def test_one_address_runs_a_bounded_number_of_checks_at_once() -> None:
    """Past PER_CLIENT_CHECKS checks in flight from one address, more are refused at once,
    while another address still gets a check."""
    gate = threading.Event()
    checkpw = Counting(gate)
    auth = BasicAuthenticator(checkpw, slots=PER_CLIENT_CHECKS + 1)
    threads = [threading.Thread(target=auth.check, args=(CONFIG, "alice", b"wrong", "flood"))
               for _ in range(PER_CLIENT_CHECKS)]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert checkpw.started.acquire(timeout=5)
    assert auth.check(CONFIG, "alice", b"wrong", "flood") is Verdict.THROTTLED
    other = threading.Thread(target=auth.check, args=(CONFIG, "alice", b"pw-a", "scraper"))
    other.start()
    assert checkpw.started.acquire(timeout=5)  # it got a slot while the flood holds its two
    gate.set()
    for thread in [*threads, other]:
        thread.join(5)
    assert checkpw.calls == PER_CLIENT_CHECKS + 1
