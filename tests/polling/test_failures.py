"""The API-failure log on a fake clock: start, per-target lines, summaries, clear, rate limits."""

from __future__ import annotations

import logging

import pytest

from tests.conftest import SECRET_KEY
from trtc_exporter.clock import FakeClock
from trtc_exporter.polling.failures import FailureLog
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.target import Target

AUTH = ApiFailure("AuthFailure.SignatureFailure", "The provided credentials could not be "
                  "validated.", "req-1")
OK = TaskStatus("InProgress", "InProgress", 1.0, "t", "", "req-ok")


def task(i: int, region: str = "ap-guangzhou") -> Target:
    return Target(api="ai_transcription", region=region, task_id=f"t{i}")


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="trtc_exporter.api_errors")
    return caplog


def messages(caplog: pytest.LogCaptureFixture, level: int | None = None) -> list[str]:
    return [r.getMessage() for r in caplog.records if level is None or r.levelno == level]


def test_a_failure_is_logged_when_it_starts_and_once_when_it_clears(
        lines: pytest.LogCaptureFixture) -> None:
    """First failure: one warning with code, action, region, target, RequestId; a repeat of
    the same kind logs nothing; the first success logs one info line."""
    clock = FakeClock()
    failures = FailureLog(clock)
    for _ in range(5):
        failures.observe(task(0), AUTH)
        clock.advance(5)
    started = messages(lines, logging.WARNING)
    assert len(started) == 1
    for part in ("code=AuthFailure.SignatureFailure", "action=DescribeAITranscription",
                 "region=ap-guangzhou", "target=task t0", "request_id=req-1",
                 "could not be validated"):
        assert part in started[0]
    failures.observe(task(0), OK)
    failures.observe(task(0), OK)
    cleared = messages(lines, logging.INFO)
    assert len(cleared) == 1 and "cleared" in cleared[0] and "5 failed polls" in cleared[0]


def test_distinct_kinds_are_logged_separately(lines: pytest.LogCaptureFixture) -> None:
    """Another code or another region is another kind with its own start line."""
    failures = FailureLog(FakeClock())
    failures.observe(task(0), AUTH)
    failures.observe(task(1, "ap-singapore"), AUTH)
    failures.observe(task(2), ApiFailure("Timeout", "no answer within 6s"))
    assert len([m for m in messages(lines) if "started" in m]) == 3
    assert set(failures.failing().values()) == {1}


def test_a_storm_is_rate_limited_and_summarised(lines: pytest.LogCaptureFixture) -> None:
    """10 000 targets failing at once: one start line, at most the burst of per-target lines,
    then one summary per minute with the count of targets and suppressed lines."""
    clock = FakeClock()
    failures = FailureLog(clock)
    for i in range(10_000):
        failures.observe(task(i), AUTH)
    assert len(messages(lines)) <= 11
    clock.advance(60)
    failures.observe(task(0), AUTH)
    summary = messages(lines)[-1]
    assert summary.startswith("10000 targets failing with AuthFailure.SignatureFailure")
    assert "9989 per-target lines suppressed" in summary  # 1 start line + a burst of 10
    for _ in range(600):  # ten more minutes of failing polls, one per second
        clock.advance(1)
        failures.observe(task(0), AUTH)
    assert len(messages(lines)) <= 11 + 1 + 10 + 10  # + summaries + refilled per-target lines


def test_a_flapping_kind_cannot_flood_the_log(lines: pytest.LogCaptureFixture) -> None:
    """One target failing every other poll for an hour: start lines stop at their bucket."""
    clock = FakeClock()
    failures = FailureLog(clock)
    for _ in range(720):
        failures.observe(task(0), ApiFailure("Timeout", "no answer within 6s"))
        clock.advance(2.5)
        failures.observe(task(0), OK)
        clock.advance(2.5)
    assert len(messages(lines)) <= 2 * (20 + 3600 / 30 + 1)  # starts and their clears


def test_removed_targets_clear_their_kind(lines: pytest.LogCaptureFixture) -> None:
    """A failing target that leaves the target set no longer keeps its kind alive."""
    failures = FailureLog(FakeClock())
    failures.observe(task(0), AUTH)
    failures.retain([task(1).key])
    assert failures.failing() == {}
    assert "cleared" in messages(lines)[-1]


def test_not_found_and_shutdown_are_not_failures(lines: pytest.LogCaptureFixture) -> None:
    """TaskNotExist is an answer, Cancelled is our own shutdown: neither is logged."""
    failures = FailureLog(FakeClock())
    failures.observe(task(0), ApiFailure("FailedOperation.TaskNotExist", "gone", "r"))
    failures.observe(task(1), ApiFailure("Cancelled", "shutting down"))
    assert messages(lines) == []


def test_lines_carry_no_secret_and_stay_on_one_line(lines: pytest.LogCaptureFixture) -> None:
    """A hostile message is flattened, shortened and quoted; the key never appears."""
    failures = FailureLog(FakeClock())
    failures.observe(task(0), ApiFailure("InternalError", "line1\nline2 " + "x" * 500, "r"))
    text = messages(lines)[0]
    assert "\n" not in text and len(text) < 400 and SECRET_KEY not in text
