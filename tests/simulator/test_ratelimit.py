"""Sliding-window rate limiting and peak tracking of the simulator (pure, explicit times)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trtc_exporter.simulator.ratelimit import PeakTracker, RateLimiter

KEY = ("AKIDtest", "DescribeAITranscription")


def test_exactly_limit_requests_pass_in_one_window() -> None:
    """Of 30 requests inside one second, the first 20 pass and the rest are refused."""
    limiter = RateLimiter()
    verdicts = [limiter.admit(KEY, 100.0 + i * 0.01, 20).allowed for i in range(30)]
    assert verdicts == [True] * 20 + [False] * 10


def test_window_is_half_open_so_requests_one_second_apart_do_not_share_it() -> None:
    """A request exactly one second after the first admitted one finds a free slot."""
    limiter = RateLimiter()
    for i in range(20):
        assert limiter.admit(KEY, 100.0 + i * 0.001, 20).allowed
    assert not limiter.admit(KEY, 100.999, 20).allowed
    assert limiter.admit(KEY, 101.0, 20).allowed


def test_limits_are_per_secret_id_and_per_action() -> None:
    """Another action or another SecretId has its own budget."""
    limiter = RateLimiter()
    for i in range(20):
        limiter.admit(KEY, 100.0 + i * 0.001, 20)
    assert limiter.admit(("AKIDtest", "DescribeCloudTranscription"), 100.5, 20).allowed
    assert limiter.admit(("AKIDother", "DescribeAITranscription"), 100.5, 20).allowed
    assert not limiter.admit(KEY, 100.5, 20).allowed


def test_message_count_includes_throttled_requests() -> None:
    """The count reported for the error message is every request of the window, like the API."""
    limiter = RateLimiter()
    decisions = [limiter.admit(KEY, 100.0 + i * 0.01, 20) for i in range(23)]
    assert [d.seen for d in decisions[-3:]] == [21, 22, 23]


def test_default_model_lets_a_steady_overload_through_at_the_limit() -> None:
    """At a steady 25 req/s, 20 per second still succeed when throttled ones do not count."""
    limiter = RateLimiter()
    allowed = sum(limiter.admit(KEY, 100.0 + i / 25, 20).allowed for i in range(250))
    assert 195 <= allowed <= 205


def test_count_throttled_model_locks_out_a_steady_overload() -> None:
    """With count_throttled, a client sending a steady 25 req/s is refused after its first 20."""
    limiter = RateLimiter(count_throttled=True)
    allowed = sum(limiter.admit(KEY, 100.0 + i / 25, 20).allowed for i in range(250))
    assert allowed == 20


def test_admitted_peak_never_exceeds_the_limit() -> None:
    """The admitted-peak statistic is bounded by the limit, whatever the offered load."""
    limiter = RateLimiter()
    for i in range(500):
        limiter.admit(KEY, 100.0 + i * 0.003, 20)
    assert limiter.admitted_peaks()[KEY] == 20
    limiter.reset_peaks()
    assert limiter.admitted_peaks() == {}


def test_out_of_order_arrivals_still_share_a_window() -> None:
    """A request stamped microseconds before the previous one still counts in their window."""
    tracker = PeakTracker()
    tracker.record(KEY, 100.000002)
    assert tracker.record(KEY, 100.000001) == 2


def _brute_force_peak(times: list[float]) -> int:
    ordered = sorted(times)
    return max(sum(1 for u in ordered if t - 1.0 < u <= t) for t in ordered)


@given(st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=80))
def test_peak_equals_brute_force_maximum_over_all_sliding_windows(millis: list[int]) -> None:
    """The tracked peak is the true maximum number of arrivals in any half-open 1 s window."""
    times = sorted(m / 1000 for m in millis)
    tracker = PeakTracker()
    for t in times:
        tracker.record(KEY, t)
    assert tracker.peaks()[KEY] == _brute_force_peak(times)


def test_late_decision_sees_windows_that_end_at_later_arrivals() -> None:
    """An arrival decided after later ones is refused if a window ending later would overflow."""
    limiter = RateLimiter()
    for i in range(20):
        assert limiter.admit(KEY, 100.5 + i * 0.001, 20).allowed
    assert not limiter.admit(KEY, 100.0, 20).allowed  # (99.519, 100.519] would hold 21
    assert limiter.admit(KEY, 99.4, 20).allowed  # no window holds it and the 20 later ones


def test_rejections_are_counted_per_key_until_reset() -> None:
    """The limiter's own refusals are counted per key and cleared with the peaks."""
    limiter = RateLimiter()
    for i in range(23):
        limiter.admit(KEY, 100.0 + i * 0.01, 20)
    assert limiter.rejected() == {KEY: 3}
    limiter.reset_peaks()
    assert limiter.rejected() == {}


@given(st.permutations(list(range(60))), st.integers(min_value=1, max_value=25))
def test_traffic_within_the_limit_is_never_throttled_in_any_decision_order(
    order: list[int], limit: int
) -> None:
    """Arrivals whose true peak is within the limit all pass, whatever order they are decided in."""
    times = [100.0 + i / limit for i in range(60)]  # exactly ``limit`` per sliding second
    assert _brute_force_peak(times) <= limit
    limiter = RateLimiter()
    assert all(limiter.admit(KEY, times[i], limit).allowed for i in order)


@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=80),
       st.booleans())
def test_admitted_never_exceed_the_limit_in_any_window_or_order(
    millis: list[int], count_throttled: bool
) -> None:
    """Whatever arrives, in whatever order, no sliding window holds more than limit admitted."""
    limiter = RateLimiter(count_throttled=count_throttled)
    admitted = [m / 1000 for m in millis if limiter.admit(KEY, m / 1000, 5).allowed]
    assert _brute_force_peak(admitted or [0.0]) <= 5


@given(st.permutations([m / 100 for m in range(0, 400, 7)]))
def test_peak_is_exact_in_any_recording_order(times: list[float]) -> None:
    """The peak tracker finds the true maximum even when arrivals are recorded out of order."""
    tracker = PeakTracker()
    for t in times:
        tracker.record(KEY, t)
    assert tracker.peaks()[KEY] == _brute_force_peak(times)
