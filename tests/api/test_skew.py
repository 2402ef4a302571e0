"""The clock offset follows the API's Date headers: every answer counts, a repeated header is
read once, an unreadable one is ignored."""

from __future__ import annotations

import pytest

from trtc_exporter.api.skew import SkewEstimator

DATE = "Tue, 24 Nov 2026 10:02:00 GMT"
EPOCH = 1795514520.0  # DATE in Unix seconds


def test_each_answer_moves_the_estimate_even_with_the_same_header() -> None:
    """Two answers of the same second both count (the kept parse changes no sample)."""
    skew = SkewEstimator(alpha=0.5)
    skew.observe(DATE, EPOCH - 10.5, EPOCH - 9.5)
    assert skew.seconds == pytest.approx(10.5)
    skew.observe(DATE, EPOCH - 0.5, EPOCH + 0.5)
    assert skew.seconds == pytest.approx((10.5 + 0.5) / 2)


def test_a_new_header_is_read_anew_and_a_bad_one_ignored() -> None:
    """The next second's header gives its own instant; garbage leaves the estimate alone."""
    skew = SkewEstimator(alpha=1.0)
    skew.observe(DATE, EPOCH, EPOCH)
    skew.observe(DATE.replace(":00 GMT", ":30 GMT"), EPOCH, EPOCH)
    assert skew.seconds == pytest.approx(30.5)
    skew.observe("not a date", EPOCH, EPOCH)
    skew.observe(None, EPOCH, EPOCH)
    assert skew.seconds == pytest.approx(30.5)
