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


def test_out_of_order_arrivals_are_clamped_not_lost() -> None:
    """A request stamped microseconds before the previous one still counts in the window."""
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
