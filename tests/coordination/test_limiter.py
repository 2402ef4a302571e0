"""The shared limiter against a real redis-server, driven by a fake clock (no real waits)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
import redis

from trtc_exporter.api.budget import Cancelled, RateLimiter
from trtc_exporter.clock import FakeClock
from trtc_exporter.coordination import limiter as limiter_module
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.limiter import FLUSH_AFTER, UNSENT_POLL, SharedRateLimiter
from trtc_exporter.coordination.membership import Membership

ACTION = "DescribeAITranscription"


def limiter(rdb: redis.Redis, clock: FakeClock, rate: float = 20.0,
            account: str = "main") -> SharedRateLimiter:
    return SharedRateLimiter(rdb, Keys("t"), account, ACTION, rate, clock, fake_now=True)


def test_first_window_is_granted_then_the_next_start_waits_a_span(rdb: redis.Redis) -> None:
    """20 starts at 20 req/s fill one window; the 21st waits until 1 s + guard after the 1st."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    t0 = clock.time()
    times = [one.take().time for _ in range(21)]
    assert times[19] - t0 == pytest.approx(19 / 20, abs=1e-6)
    assert times[20] - times[0] == pytest.approx(1.02, abs=1e-6)


def test_two_replicas_share_one_window(rdb: redis.Redis) -> None:
    """Two clients of the same key together get 20 starts per span, not 20 each."""
    clock = FakeClock(auto_advance=True)
    a, b = limiter(rdb, clock), limiter(rdb, clock)
    times = sorted([a.take().time for _ in range(15)] + [b.take().time for _ in range(15)])
    for i in range(len(times) - 20):
        assert times[i + 20] - times[i] >= 1.02 - 1e-6


def test_accounts_and_actions_have_separate_windows(rdb: redis.Redis) -> None:
    """Another account's limiter is not slowed by this one's full window."""
    clock = FakeClock(auto_advance=True)
    main, other = limiter(rdb, clock), limiter(rdb, clock, account="other")
    for _ in range(20):
        main.take()
    t = clock.time()
    assert other.take().time == pytest.approx(t, abs=1e-6)


def test_starts_after_a_pause_still_keep_the_window(rdb: redis.Redis) -> None:
    """After a pause the 21 starts around it still span at least 1 s + guard."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    first = one.take().time
    clock.advance(0.5)
    times = [first] + [one.take().time for _ in range(20)]
    assert times[1] - first >= 0.5
    assert times[20] - times[0] >= 1.02 - 1e-6


def test_throttling_cuts_the_shared_rate_for_every_replica(rdb: redis.Redis) -> None:
    """RequestLimitExceeded seen by one replica lowers the rate the other one reads."""
    clock = FakeClock(auto_advance=True)
    a, b = limiter(rdb, clock), limiter(rdb, clock)
    assert a.on_throttled() is True
    assert b.effective_rate == pytest.approx(14.0)
    assert b.on_throttled() is False  # cooling down, shared too
    assert a.on_throttled(limit_hint=10) is True  # the API's word wins during a cool-down
    assert b.effective_rate == pytest.approx(10.0)


def test_adaptation_follows_the_local_limiter_step_by_step(rdb: redis.Redis) -> None:
    """Cuts, cool-downs, recovery and the remembered ceiling match budget.RateLimiter."""
    clock = FakeClock()
    shared, local = limiter(rdb, clock), RateLimiter(20.0, clock)
    steps: list[tuple[float, int | None, bool]] = [
        (0.0, None, False), (0.5, None, False), (1.0, None, False), (2.5, None, False),
        (3.0, 12, False), (0.1, None, True), (2.5, None, True), (40.0, None, False)]
    for advance, hint, marginal in steps:
        clock.advance(advance)
        assert shared.on_throttled(hint, marginal) == local.on_throttled(hint, marginal)
        for _ in range(3):
            clock.advance(0.7)
            assert shared.effective_rate == pytest.approx(local.effective_rate)
            assert shared.guard == pytest.approx(local.guard)


def test_marginal_throttling_widens_the_shared_guard(rdb: redis.Redis) -> None:
    """One request over at our own rate widens the guard instead of cutting the rate."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    assert one.on_throttled(limit_hint=20, marginal=True) is True
    assert one.effective_rate == pytest.approx(20.0)
    assert one.guard == pytest.approx(0.04)


def test_a_cut_rate_shapes_the_window(rdb: redis.Redis) -> None:
    """At a shared rate of 10 req/s the 11th start waits a span of 1 s + guard."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    one.on_throttled(limit_hint=10)
    times = [one.take().time for _ in range(11)]
    assert times[10] - times[0] == pytest.approx(1.02, abs=1e-6)


def test_a_reload_applies_the_new_configured_rate(rdb: redis.Redis) -> None:
    """set_configured_rate changes the shared rate at the next call."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    assert one.effective_rate == pytest.approx(20.0)
    one.set_configured_rate(5.0)
    assert one.effective_rate == pytest.approx(5.0)


def test_a_share_below_one_lowers_this_replicas_window(rdb: redis.Redis) -> None:
    """With share 0.5 a replica plans 10 starts per span at 20 req/s."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    one.set_share(0.5)
    times = [one.take().time for _ in range(11)]
    assert times[10] - times[0] == pytest.approx(1.02, abs=1e-6)


def test_a_cancelled_wait_raises_and_sends_nothing(rdb: redis.Redis) -> None:
    """Cancelling while waiting for a slot raises Cancelled (the caller must not send)."""
    clock = FakeClock(auto_advance=True)
    one = limiter(rdb, clock)
    for _ in range(20):
        one.take()
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        one.take(cancel)


def test_server_time_is_used_without_a_fake_clock(rdb: redis.Redis) -> None:
    """Without fake_now the grant carries the Redis server's TIME."""
    clock = FakeClock(auto_advance=True)
    one = SharedRateLimiter(rdb, Keys("t"), "main", ACTION, 20.0, clock)
    seconds, micros = rdb.time()
    granted = one.take().time
    assert abs(granted - (seconds + micros / 1e6)) < 5.0


def _members(rdb: redis.Redis, clock: FakeClock, *names: str) -> list[Membership]:
    return [Membership(rdb, Keys("t"), n, 3.0, clock, fake_now=True, lapse=60.0) for n in names]


def _lapsing(rdb: redis.Redis, clock: FakeClock) -> SharedRateLimiter:
    return SharedRateLimiter(rdb, Keys("t"), "main", ACTION, 20.0, clock, fake_now=True,
                             lapse=60.0)


def test_a_lapsed_member_holds_its_share_back(rdb: redis.Redis) -> None:
    """One of three members stops heartbeating: the others get 2/3 of the window until the
    lapse hold passed, since the silent one may be spending its fallback 1/3 on its own."""
    clock = FakeClock(auto_advance=True)
    a, b, c = _members(rdb, clock, "a", "b", "c")
    for m in (a, b, c):
        m.beat()
    clock.advance(4.0)  # c's entry expired 1 s ago
    a.beat()
    b.beat()
    one = _lapsing(rdb, clock)
    assert one.effective_rate == pytest.approx(20.0 * 2 / 3)
    times = [one.take().time for _ in range(14)]
    assert times[13] - times[0] >= 0.99  # 13 per window: floor(20 x 2/3)
    clock.advance(61.0)
    a.beat()
    b.beat()
    assert one.effective_rate == pytest.approx(20.0)


def test_a_member_that_left_cleanly_holds_nothing_back(rdb: redis.Redis) -> None:
    """A clean stop removes the entry: the remaining members get the whole window at once."""
    clock = FakeClock(auto_advance=True)
    a, b = _members(rdb, clock, "a", "b")
    a.beat()
    b.beat()
    b.leave()
    one = _lapsing(rdb, clock)
    times = [one.take().time for _ in range(20)]
    assert times[19] - times[0] < 1.0


class _Pair:
    """The shared limiter and a local RateLimiter fed the same signals on one fake clock."""

    def __init__(self, rdb: redis.Redis, clock: FakeClock) -> None:
        self.clock = clock
        self.shared, self.local = limiter(rdb, clock), RateLimiter(20.0, clock)

    def accept(self, count: int, per_second: float) -> None:
        for _ in range(count):
            self.clock.advance(1 / per_second)
            self.shared.on_accepted(self.clock.monotonic())
            self.local.on_accepted(self.clock.monotonic())

    def throttle(self, age: float = 0.02, hint: int | None = None,
                 marginal: bool = False) -> bool:
        sent = self.clock.monotonic() - age
        acted = self.shared.on_throttled(hint, marginal, sent_at=sent)
        assert acted == self.local.on_throttled(hint, marginal, sent_at=sent)
        return acted

    def follow(self, seconds: float, step: float = 0.7) -> None:
        for _ in range(round(seconds / step)):
            self.clock.advance(step)
            assert self.shared.effective_rate == pytest.approx(self.local.effective_rate)
            assert self.shared.guard == pytest.approx(self.local.guard)


def test_unstated_limit_follows_the_local_limiter_step_by_step(rdb: redis.Redis) -> None:
    """Cut to 95 % of what was accepted, stale answers ignored, hold, probe, doubled hold and a
    fresh start after full recovery: the shared state matches budget.RateLimiter throughout."""
    pair = _Pair(rdb, FakeClock())
    pair.accept(30, 15.0)
    assert pair.throttle() is True
    assert pair.shared.effective_rate == pytest.approx(0.95 * 15)
    assert pair.throttle(age=0.5) is False  # sent before the reaction: reports the old rate
    pair.follow(9.1)  # pause, 5 s hold, then probing upward
    assert pair.local.effective_rate > 0.95 * 15
    assert pair.throttle() is True  # a probe throttled: back to the good rate, hold doubled
    assert pair.shared.effective_rate == pytest.approx(0.95 * 15)
    pair.follow(14.0)
    assert pair.throttle(hint=20, marginal=True) is True  # one over: the guard widens
    pair.follow(2.1)
    assert pair.throttle(hint=8) is True  # the API's word
    pair.follow(3.5)
    pair.clock.advance(10.0)
    assert pair.throttle() is True  # nothing accepted in its window: multiplicative cut
    pair.follow(70.0, step=3.5)  # the ceiling forgotten, back to 20, hold reset
    assert pair.local.effective_rate == pytest.approx(20.0)
    pair.accept(20, 20.0)
    assert pair.throttle() is True
    pair.follow(7.0)


def test_the_measurement_is_shared_by_the_replicas(rdb: redis.Redis) -> None:
    """Requests accepted by two replicas in the window add up to the rate a throttle cuts to."""
    clock = FakeClock()
    a, b = limiter(rdb, clock), limiter(rdb, clock)
    for i in range(16):
        clock.advance(1 / 16)
        (a if i % 2 else b).on_accepted(clock.monotonic())
    a.take()  # A's next reservation carries its send times still waiting
    assert b.on_throttled(sent_at=clock.monotonic()) is True  # B's ride on its throttle
    assert a.effective_rate == pytest.approx(0.95 * 16)
    assert a.on_throttled(sent_at=clock.monotonic() - 0.02) is False  # stale for every replica


def test_send_times_go_alone_once_the_oldest_waited_long_enough(rdb: redis.Redis) -> None:
    """A replica that reserves nothing still delivers its measurement within FLUSH_AFTER."""
    clock = FakeClock()
    a, b = limiter(rdb, clock), limiter(rdb, clock)
    a.on_accepted(clock.monotonic())
    clock.advance(FLUSH_AFTER)
    a.on_accepted(clock.monotonic())  # the first has waited FLUSH_AFTER: both are sent
    assert b.on_throttled(sent_at=clock.monotonic()) is True
    assert b.effective_rate == pytest.approx(max(1.0, 0.95 * 2))


def test_an_unstated_cut_pauses_one_window_and_moves_waiting_starts(rdb: redis.Redis) -> None:
    """A start waiting when the cut comes is moved behind the one-window pause."""
    clock = FakeClock()
    one = limiter(rdb, clock)
    one.take()  # granted at once: the next slot is 1/20 s later
    grants: list[float] = []
    waiter = threading.Thread(target=lambda: grants.append(one.take().time))
    waiter.start()
    assert clock.await_sleepers(1)
    cut_at = clock.time()
    one.on_accepted(clock.monotonic())
    assert one.on_throttled(sent_at=clock.monotonic()) is True
    planned = [score for _, score in rdb.zrange(
        Keys("t").limiter("main", ACTION, "reserved"), 0, -1, withscores=True)]
    assert planned[-1] / 1e6 >= cut_at + 1.0 - 1e-6
    clock.advance(1.1)
    waiter.join(5)
    assert grants and grants[0] >= cut_at + 1.0 - 1e-6


def test_a_state_written_by_an_older_version_is_completed(rdb: redis.Redis) -> None:
    """A rolling upgrade: the AIMD hash lacks the newer fields; they take their defaults."""
    clock = FakeClock()
    rdb.hset(Keys("t").limiter("main", ACTION, "aimd"), mapping={
        "configured": 20, "rate": 20, "ceiling": 20, "cooldown_until": -1e18,
        "last_adjust": clock.time() * 1e6, "last_cut": -1e18, "guard": 20000,
        "last_widen": -1e18})
    one = limiter(rdb, clock)
    one.on_accepted(clock.monotonic())
    assert one.on_throttled(sent_at=clock.monotonic()) is True
    assert one.effective_rate == pytest.approx(1.0)  # 95 % of 1 accepted, at the 5 % floor


def confirming(rdb: redis.Redis, clock: FakeClock, rate: float = 1.0) -> SharedRateLimiter:
    return SharedRateLimiter(rdb, Keys("t"), "main", ACTION, rate, clock, guard=0.0,
                             fake_now=True, confirm_sends=True)


class ReportingClock(FakeClock):
    """Auto-advancing; the first wait that reaches ``at`` runs ``report`` first (a write
    reported by another thread of the same replica while a grant waits)."""

    def __init__(self, start: float, at: float, report: Callable[[], None]) -> None:
        super().__init__(start, auto_advance=True)
        self.at, self.report = at, report
        self.reported = False

    def wait(self, event: threading.Event, seconds: float) -> bool:
        if not self.reported and self.time() + seconds >= self.at:
            self.advance(max(0.0, self.at - self.time()))
            self.reported = True
            self.report()
            return event.is_set()
        return super().wait(event, seconds)


def test_confirmed_shared_start_counts_the_window_from_the_write(rdb: redis.Redis) -> None:
    """A request written 0.3 s after its grant delays another replica's start a window on."""
    clock = FakeClock(1000.0, auto_advance=True)
    a, b = confirming(rdb, clock), confirming(rdb, clock)
    a.acquire()  # granted at 1000.0 ...
    clock.advance(0.3)
    a.sent()  # ... written at 1000.3 (the thread was held up)
    assert b.take().time == pytest.approx(1001.3, abs=1e-4)  # not 1001.0


def test_unreported_shared_start_holds_every_replica_until_written(rdb: redis.Redis) -> None:
    """An unreported write keeps its start in every window until it is reported (here at
    1005.0): another replica's next start comes one window after the report."""
    holder: list[SharedRateLimiter] = []
    clock = ReportingClock(1000.0, 1005.0, lambda: holder[0].sent())
    a, b = confirming(rdb, clock), confirming(rdb, clock)
    holder.append(a)
    a.acquire()
    assert b.take().time == pytest.approx(1006.0, abs=UNSENT_POLL + 1e-4)


def test_a_start_never_reported_counts_until_its_deadline(
        rdb: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that died between grant and write holds its start only until the deadline."""
    monkeypatch.setattr(limiter_module, "UNSENT_LIMIT", 2.0)  # 30 s would mean 6 000 polls
    clock = FakeClock(1000.0, auto_advance=True)
    dead, alive = confirming(rdb, clock), confirming(rdb, clock)
    dead.take()  # its thread never reports: the replica was killed
    assert alive.take().time == pytest.approx(1000.0 + 2.0 + 1.0, abs=UNSENT_POLL + 1e-4)


def test_a_threads_next_acquire_reports_its_previous_shared_write(rdb: redis.Redis) -> None:
    """A caller that never reports its write does not stall: its next acquire reports it."""
    clock = FakeClock(1000.0, auto_advance=True)
    one = confirming(rdb, clock, rate=2.0)
    for _ in range(5):
        one.acquire()
    assert clock.time() == pytest.approx(1002.0, abs=0.02)  # 0, 0.5, …, 2.0: no stall


def test_without_confirm_sends_a_report_changes_nothing(rdb: redis.Redis) -> None:
    """A limiter counting from the grant ignores write reports (no Redis call, no delay)."""
    clock = FakeClock(1000.0, auto_advance=True)
    one = SharedRateLimiter(rdb, Keys("t"), "main", ACTION, 1.0, clock, guard=0.0,
                            fake_now=True)
    one.acquire()
    clock.advance(0.3)
    one.sent()
    assert one.take().time == pytest.approx(1001.0, abs=1e-6)
