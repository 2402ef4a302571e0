"""The budget: never more than rate_limit starts in any 1 s window, yet close to full use."""

from __future__ import annotations

import bisect
import gc
import itertools
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trtc_exporter.api.budget import (
    AimdPolicy,
    Budget,
    Cancelled,
    Grant,
    RateLimiter,
    hint_from_message,
    limit_from_message,
)
from trtc_exporter.clock import FakeClock


def grant_times(limiter: RateLimiter, clock: FakeClock, arrivals: list[float]) -> list[float]:
    """Reserve one slot per arrival (seconds from now), returning the absolute grant times."""
    start = clock.monotonic()
    grants = []
    for offset in sorted(arrivals):
        target = start + offset
        if target > clock.monotonic():
            clock.advance(target - clock.monotonic())
        grants.append(clock.monotonic() + limiter.reserve())
    return grants


def max_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=50),
    arrivals=st.lists(st.floats(min_value=0, max_value=5, allow_nan=False), max_size=300),
)
def test_no_window_ever_exceeds_the_rate(rate: int, arrivals: list[float]) -> None:
    """Whatever the arrival pattern, no half-open 1 s window holds more than `rate` grants."""
    clock = FakeClock(0.0)
    grants = grant_times(RateLimiter(rate, clock), clock, arrivals)
    assert max_in_window(grants) <= rate


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(min_value=5, max_value=50), guard_ms=st.integers(min_value=0, max_value=25))
def test_excess_demand_uses_at_least_97_percent(rate: int, guard_ms: int) -> None:
    """Under a backlog the limiter grants at least 97 % of the configured rate."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(rate, clock, guard=guard_ms / 1000)
    grants = grant_times(limiter, clock, [0.0] * (rate * 20))
    achieved = (len(grants) - 1) / (grants[-1] - grants[0])
    assert achieved >= 0.97 * rate
    assert max_in_window(grants) <= rate


def test_grants_are_spaced_not_bursted() -> None:
    """Twenty simultaneous requests are spread 50 ms apart instead of starting at once."""
    clock = FakeClock(0.0)
    grants = grant_times(RateLimiter(20, clock), clock, [0.0] * 20)
    gaps = [b - a for a, b in itertools.pairwise(grants)]
    assert min(gaps) >= 0.05 - 1e-9


def test_guard_keeps_a_margin_between_windows() -> None:
    """The 21st grant comes at least 1 s + guard after the 1st, absorbing network jitter."""
    clock = FakeClock(0.0)
    grants = grant_times(RateLimiter(20, clock, guard=0.02), clock, [0.0] * 21)
    assert grants[20] - grants[0] >= 1.02 - 1e-9


def test_acquire_sleeps_on_the_injected_clock() -> None:
    """acquire() waits by sleeping on the clock, so a fake clock drives it without real time."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(1, clock, guard=0.0)
    assert limiter.acquire() == 0.0
    done = threading.Event()
    waited: list[float] = []
    thread = threading.Thread(target=lambda: (waited.append(limiter.acquire()), done.set()))
    thread.start()
    assert clock.await_sleepers(1)
    assert not done.is_set()
    clock.advance(1.0)
    assert done.wait(2.0)
    assert waited == [1.0]


def test_throttle_cuts_multiplicatively_and_honours_cooldown() -> None:
    """A RequestLimitExceeded cuts the rate by the policy factor once per cool-down period."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock, policy=AimdPolicy(decrease=0.5, cooldown=2.0))
    assert limiter.on_throttled() is True
    assert limiter.effective_rate == 10
    assert limiter.on_throttled() is False  # in-flight requests of the old rate: no second cut
    assert limiter.effective_rate == 10


def test_stated_limit_sets_rate_directly() -> None:
    """When the API states its limit in the message, the rate drops straight to that limit."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock)
    limiter.on_throttled(limit_hint=10)
    assert limiter.effective_rate == 10


def test_recovery_is_additive_and_capped_at_configured() -> None:
    """After the ceiling memory passes, the rate climbs 1 req/s per second back to configured."""
    clock = FakeClock(0.0)
    policy = AimdPolicy(increase_per_second=1.0, cooldown=2.0, ceiling_memory=30.0)
    limiter = RateLimiter(20, clock, policy=policy)
    limiter.on_throttled(limit_hint=10)
    clock.advance(10)
    assert limiter.effective_rate == 10  # held at the learned ceiling
    clock.advance(25)  # 35 s after the throttle: ceiling forgotten
    rate_then = limiter.effective_rate
    clock.advance(3)
    assert limiter.effective_rate == rate_then + 3
    clock.advance(60)
    assert limiter.effective_rate == 20


def test_floor_bounds_the_cut() -> None:
    """Repeated throttling never drives the rate below the floor fraction."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock, policy=AimdPolicy(decrease=0.1, floor_fraction=0.05))
    for _ in range(10):
        limiter.on_throttled()
        clock.advance(3)
    assert limiter.effective_rate >= 1.0


def test_actions_have_independent_limiters() -> None:
    """A saturated 1.0 limiter does not delay a 2.0 grant."""
    clock = FakeClock(0.0)
    budget = Budget({"DescribeAITranscription": 20, "DescribeCloudTranscription": 20}, clock)
    for _ in range(100):
        budget.limiter("DescribeAITranscription").reserve()
    assert budget.limiter("DescribeCloudTranscription").reserve() == 0.0


def test_limit_hint_parsed_from_english_and_chinese_messages() -> None:
    """The stated limit is read from both message languages the API uses."""
    english = ("Your current request times equals to `21` in a second, which exceeds the "
               "frequency limit `20` for a second. Please reduce the frequency of calls.")
    chinese = "您当前每秒请求 `6` 次\uff0c超过了每秒频率上限 `5`\uff0c请稍后重试。"
    assert limit_from_message(english) == 20
    assert limit_from_message(chinese) == 5
    assert limit_from_message("Internal error.") is None


def test_reload_applies_new_configured_rate() -> None:
    """Budget.update changes the configured rate of an existing action and adds new ones."""
    clock = FakeClock(0.0)
    budget = Budget({"DescribeAITranscription": 20}, clock)
    budget.update({"DescribeAITranscription": 10, "DescribeCloudTranscription": 5})
    assert budget.limiter("DescribeAITranscription").effective_rate == 10
    assert budget.limiter("DescribeCloudTranscription").configured_rate == 5


def test_late_sender_pushes_the_window_back() -> None:
    """A request that really started late (0.7 s instead of 0.5 s) delays the one a window on."""
    clock = FakeClock(0.0, auto_advance=True)
    limiter = RateLimiter(2, clock, guard=0.0)
    reserved = [limiter._reserve()[0] for _ in range(3)]  # slots 0.0, 0.5, 1.0
    assert [g.time for g in reserved] == [0.0, 0.5, 1.0]
    for grant in reserved:
        grant.started = True
    reserved[1].time = 0.7  # its thread woke late and started then
    limiter.acquire()  # slot 1.5, but anchored on the late one: 0.7 + 1.0
    assert abs(clock.monotonic() - 1.7) < 1e-9


def test_cancelled_wait_raises_and_sends_nothing() -> None:
    """A shutdown during the wait raises Cancelled instead of returning a token."""
    import pytest

    from trtc_exporter.api.budget import Cancelled

    clock = FakeClock(0.0, auto_advance=True)
    limiter = RateLimiter(1, clock)
    limiter.acquire()
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        limiter.acquire(stop)


def test_marginal_throttle_widens_the_guard_not_the_rate() -> None:
    """21 counted against a limit of 20 is jitter: the guard doubles, rate stays, then resets."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock, guard=0.02, policy=AimdPolicy(ceiling_memory=30.0))
    message = ("Your current request times equals to `21` in a second, which exceeds the "
               "frequency limit `20` for a second.")
    hint = hint_from_message(message)
    assert (hint.limit, hint.seen, hint.marginal) == (20, 21, True)
    limiter.on_throttled(hint.limit, hint.marginal)
    assert limiter.effective_rate == 20
    assert limiter.guard == 0.04
    clock.advance(31)
    assert limiter.effective_rate == 20
    assert limiter.guard == 0.02


def test_heavy_throttle_is_someone_else_and_cuts_the_rate() -> None:
    """30 counted against a limit of 20 means shared quota: multiplicative decrease."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock, policy=AimdPolicy(decrease=0.7))
    hint = hint_from_message("Your current request times equals to `30` in a second, which "
                             "exceeds the frequency limit `20` for a second.")
    assert not hint.marginal
    limiter.on_throttled(hint.limit, hint.marginal)
    assert limiter.effective_rate == 14


def test_stated_lower_limit_applies_even_during_cooldown() -> None:
    """A limit drop announced right after a guard widening is taken at once, not after 2 s."""
    clock = FakeClock(0.0)
    limiter = RateLimiter(20, clock, policy=AimdPolicy(cooldown=2.0))
    limiter.on_throttled(20, marginal=True)  # jitter: guard widened, cool-down starts
    limiter.on_throttled(10)  # 0 s later the API says its limit is now 10
    assert limiter.effective_rate == 10


def test_guard_widening_does_not_extend_the_ceiling_memory() -> None:
    """A marginal throttle during a drop does not hold the learned ceiling longer."""
    clock = FakeClock(0.0)
    policy = AimdPolicy(ceiling_memory=30.0, cooldown=2.0, increase_per_second=1.0)
    limiter = RateLimiter(20, clock, policy=policy)
    limiter.on_throttled(10)  # limit dropped to 10 at t=0
    clock.advance(20)
    limiter.on_throttled(10, marginal=True)  # 11 of 10 at t=20: widen the guard only
    clock.advance(15)  # t=35: 30 s after the cut, 15 s after the widening
    assert limiter.effective_rate > 10  # recovering, not held until t=50
    assert limiter.guard == 0.04  # the widened guard is still in force


def test_grant_waits_for_an_anchor_that_has_not_started() -> None:
    """After a pause, a grant a window on does not start before its anchor really started."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0)
    anchor = limiter._reserve()[0]  # slot 0.0, but its thread has not run yet
    clock.advance(5.0)  # everything was paused for 5 s
    done = threading.Event()
    thread = threading.Thread(target=lambda: (limiter.acquire(), done.set()))
    thread.start()
    assert clock.await_sleepers(1)
    clock.advance(0.01)
    assert clock.await_sleepers(1)
    assert not done.is_set()  # the anchor may still start now: waiting is the only safe choice
    with limiter._lock:
        anchor.time, anchor.started = clock.monotonic(), True
    clock.advance(1.0)
    assert done.wait(2.0)
    thread.join()


def _accept(limiter: RateLimiter, clock: FakeClock, count: int, seconds: float = 1.0) -> float:
    """``count`` accepted requests spread over the last ``seconds``; returns the send time of
    the next (throttled) request."""
    start = clock.monotonic() - seconds
    for i in range(1, count + 1):
        limiter.on_accepted(start + i * seconds / count)
    return clock.monotonic()


def test_unstated_throttle_cuts_to_the_accepted_rate_and_pauses_a_window() -> None:
    """A plain "too many requests" after 10 accepted in the last second: rate 9.5 (10 x 0.95),
    and no request may start for one window so the server's window drains."""
    clock = FakeClock(100.0)
    limiter = RateLimiter(20, clock)
    sent = _accept(limiter, clock, 10)
    assert limiter.on_throttled(sent_at=sent) is True
    assert limiter.effective_rate == 9.5
    assert limiter.reserve() >= 1.0


def test_throttles_of_requests_sent_before_the_reaction_are_stale() -> None:
    """Answers to requests sent at the old rate say nothing new; one sent after the cut does."""
    clock = FakeClock(100.0)
    limiter = RateLimiter(20, clock)
    sent = _accept(limiter, clock, 10)
    limiter.on_throttled(sent_at=sent)
    clock.advance(0.05)
    assert limiter.on_throttled(sent_at=sent - 0.01) is False  # in flight before the cut
    clock.advance(1.5)
    assert limiter.on_throttled(sent_at=clock.monotonic() - 0.1) is True
    assert limiter.effective_rate < 9.5


def test_throttled_probe_returns_to_the_good_rate_and_waits_longer() -> None:
    """After the hold the rate probes upward; a throttle then goes back to the rate that
    worked and doubles the hold before the next probe."""
    clock = FakeClock(100.0)
    policy = AimdPolicy(hold=5.0, max_hold=20.0, increase_per_second=1.0)
    limiter = RateLimiter(20, clock, policy=policy)
    limiter.on_throttled(sent_at=_accept(limiter, clock, 10))  # good rate 9.5, pause 1 s
    clock.advance(1.0 + 5.0 + 2.0)  # pause, hold, then 2 s of probing
    assert limiter.effective_rate == 11.5
    limiter.on_throttled(sent_at=clock.monotonic())
    assert limiter.effective_rate == 9.5
    clock.advance(1.0 + 9.0)  # the hold is 10 s now: still no probe
    assert limiter.effective_rate == 9.5
    clock.advance(2.0)
    assert limiter.effective_rate > 9.5


def test_recovery_to_the_configured_rate_resets_the_hold() -> None:
    """Back at the configured rate, a new drop starts from the short hold again."""
    clock = FakeClock(100.0)
    limiter = RateLimiter(20, clock, policy=AimdPolicy(hold=5.0, increase_per_second=1.0))
    limiter.on_throttled(sent_at=_accept(limiter, clock, 10))
    clock.advance(120)
    assert limiter.effective_rate == 20
    limiter.on_throttled(sent_at=_accept(limiter, clock, 10))
    clock.advance(1.0 + 5.0 + 1.0)
    assert limiter.effective_rate == 10.5


def test_confirmed_send_counts_the_window_from_the_write() -> None:
    """With confirm_sends, a request written 0.3 s after its grant delays the one a window on."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0, confirm_sends=True)
    limiter.acquire()  # granted at 0.0 ...
    clock.advance(0.3)
    limiter.sent()  # ... but written at 0.3 (the thread was held up)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (limiter.acquire(), done.set()))
    thread.start()
    assert clock.await_sleepers(1)
    clock.advance(0.8)  # 1.1: a window after the grant, not after the write
    assert clock.await_sleepers(1)
    assert not done.is_set()
    clock.advance(0.2)  # 1.3: a window after the write
    assert done.wait(2.0)
    thread.join()


def test_unconfirmed_grant_holds_the_next_window_until_written() -> None:
    """A grant not yet reported written blocks the grant a window on, however long it takes."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0, confirm_sends=True)
    limiter.acquire()
    done = threading.Event()
    thread = threading.Thread(target=lambda: (limiter.acquire(), done.set()))
    thread.start()
    assert clock.await_sleepers(1)
    clock.advance(5.0)
    assert clock.await_sleepers(1)
    assert not done.is_set()
    limiter.sent()  # written at 5.0: the next may start at 6.0
    clock.advance(0.5)
    assert clock.await_sleepers(1)
    assert not done.is_set()
    clock.advance(0.5)
    assert done.wait(2.0)
    thread.join()


def test_a_threads_next_acquire_reports_its_previous_write() -> None:
    """A caller that never reports its write does not stall the limiter: its next acquire does."""
    clock = FakeClock(0.0, auto_advance=True)
    limiter = RateLimiter(2, clock, guard=0.0, confirm_sends=True)
    for _ in range(5):
        limiter.acquire()
    assert abs(clock.monotonic() - 2.0) < 1e-9  # 0, 0.5, 1.0, 1.5, 2.0: no stall


def _live_grants() -> int:
    gc.collect()
    return sum(isinstance(o, Grant) for o in gc.get_objects())


def test_past_grants_are_let_go() -> None:
    """Grants older than the window are freed: memory stays flat however many requests ran."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(20, clock)
    before = _live_grants()
    for _ in range(2000):  # 100 s at the full rate
        clock.advance(limiter.reserve())
    assert _live_grants() - before < 100  # about two windows' worth, not 2 000


def grant_ahead_times(limiter: RateLimiter, clock: FakeClock, count: int,
                      write_lag: float = 0.0) -> list[float]:
    """A dispatcher's loop: sleep until the limiter may grant ahead, take the grant, and hand it
    to a sender that writes ``write_lag`` seconds later (reported through :meth:`ahead` and
    :meth:`sent` in this thread); the grants' write times."""
    written = []
    while len(written) < count:
        grant = limiter.grant_ahead()
        if not isinstance(grant, Grant):
            clock.advance(grant)
            continue
        clock.advance(write_lag)
        with limiter.ahead(grant, 0.0):
            limiter.acquire()
            limiter.sent()
        written.append(grant.time)
    return written


@settings(max_examples=50, deadline=None)
@given(rate=st.integers(min_value=1, max_value=50), lag_ms=st.integers(min_value=0, max_value=5))
def test_grants_ahead_keep_the_window_and_use_the_budget(rate: int, lag_ms: int) -> None:
    """Granting ahead to another thread that writes up to 5 ms later (a thread hand-off) keeps
    every 1 s window within the rate, counted from the writes, and still uses at least 97 % of
    it under a backlog."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(rate, clock, confirm_sends=True)
    writes = grant_ahead_times(limiter, clock, rate * 10, write_lag=lag_ms / 1000)
    assert max_in_window(writes) <= rate
    assert (len(writes) - 1) / (writes[-1] - writes[0]) >= 0.97 * rate


def test_a_grant_ahead_is_taken_by_the_senders_acquire_without_a_wait() -> None:
    """The thread handed a grant gets it from acquire at once, with the wait it was handed,
    and no second slot is reserved for it."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(2, clock, guard=0.0, confirm_sends=True)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    with limiter.ahead(grant, 0.25):
        assert limiter.acquire() == 0.25
    assert abs(limiter.free_in() - 0.5) < 1e-9  # only the one grant counts


def test_grant_ahead_tells_the_wait_instead_of_reserving() -> None:
    """While the window is busy, grant_ahead returns the seconds to the next slot and reserves
    nothing: asking again later grants that same slot."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(2, clock, guard=0.0)
    assert isinstance(limiter.grant_ahead(), Grant)
    assert limiter.grant_ahead() == 0.5
    assert limiter.grant_ahead() == 0.5
    clock.advance(0.5)
    assert isinstance(limiter.grant_ahead(), Grant)


def test_a_grant_ahead_never_taken_frees_its_window() -> None:
    """A grant whose poll ended before its request (target removed) counts from its grant
    time: it does not hold the grant a window later until some report that never comes."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0, confirm_sends=True)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    with limiter.ahead(grant, 0.0):
        pass  # never acquired: nothing was sent
    clock.advance(1.0)
    assert isinstance(limiter.grant_ahead(), Grant)


def test_an_unwritten_grant_ahead_blocks_the_next_window() -> None:
    """Granting ahead keeps the write rule: a grant handed out but not written yet holds the
    grant a window later, however long it takes."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0, confirm_sends=True)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    clock.advance(5.0)
    assert not isinstance(limiter.grant_ahead(), Grant)
    with limiter.ahead(grant, 0.0):
        limiter.acquire()
        limiter.sent()  # written at 5.0
    assert limiter.free_in() == 1.0


def test_a_grant_ahead_not_yet_taken_waits_behind_a_throttle_pause() -> None:
    """A throttle's pause holds back the requests still waiting for their turn, a grant handed
    to a queued poll included: its sender waits for the pause's end instead of sending into the
    server's full window at once."""
    clock = FakeClock(100.0, auto_advance=True)
    limiter = RateLimiter(20, clock, confirm_sends=True)
    sent = _accept(limiter, clock, 10)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    assert limiter.on_throttled(sent_at=sent) is True  # pauses one window from now
    paused_at = clock.monotonic()
    with limiter.ahead(grant, 0.0):
        limiter.acquire()
        assert clock.monotonic() >= paused_at + 1.0
        limiter.sent()


def test_a_late_write_does_not_add_up_in_the_spacing() -> None:
    """The 1/rate spacing is planned from grants: a request written 0.1 s after its grant does
    not push the next grant 0.1 s back (only the window a whole rate later counts from writes),
    so a dispatcher's hand-off delay does not cost budget at every request."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(2, clock, guard=0.0, confirm_sends=True)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    clock.advance(0.1)
    with limiter.ahead(grant, 0.0):
        limiter.acquire()
        limiter.sent()  # written at 0.1
    assert abs(limiter.free_in() - 0.4) < 1e-9  # the next at 0.5, not 0.6


def test_a_dispatcher_waking_late_each_time_keeps_the_rate() -> None:
    """Woken 5 ms after each slot (a loaded machine), a dispatcher granting ahead still grants
    at the planned pace: lateness does not add up into the spacing."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(20, clock, confirm_sends=True)
    times = []
    while len(times) < 200:
        grant = limiter.grant_ahead()
        if not isinstance(grant, Grant):
            clock.advance(grant + 0.005)
            continue
        with limiter.ahead(grant, 0.0):
            limiter.acquire()
            limiter.sent()
        times.append(grant.time)
    assert (len(times) - 1) / (times[-1] - times[0]) >= 0.97 * 20
    assert max_in_window(times) <= 20


def test_after_a_stall_grants_do_not_burst_to_catch_up() -> None:
    """A dispatcher back after a 2 s stall gets one grant at once, then the spacing again."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(20, clock)
    assert isinstance(limiter.grant_ahead(), Grant)
    clock.advance(2.0)
    assert isinstance(limiter.grant_ahead(), Grant)
    assert limiter.grant_ahead() == pytest.approx(0.05)


def test_a_grant_ahead_is_not_used_once_stopping() -> None:
    """A sender handed a grant whose cancel event is already set (shutdown) gets Cancelled, as a
    waiting acquire would, and the grant is released: no request follows a stop."""
    clock = FakeClock(0.0, auto_advance=False)
    limiter = RateLimiter(1, clock, guard=0.0, confirm_sends=True)
    grant = limiter.grant_ahead()
    assert isinstance(grant, Grant)
    stop = threading.Event()
    stop.set()
    with limiter.ahead(grant, 0.0), pytest.raises(Cancelled):
        limiter.acquire(stop)
    clock.advance(1.0)
    assert limiter.free_in() == 0.0  # released: the next window is not held up
