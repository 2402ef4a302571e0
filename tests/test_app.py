"""The exporter's health and readiness on a fake clock, with the API faked at the HTTP boundary."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.apimock import ApiMock, Sent
from tests.conftest import ENDPOINT, SECRET_KEY, answer, api_error, build_exporter, poll_all
from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock


@pytest.fixture
def table() -> Iterator[dict[str, dict[str, object]]]:
    """The fake API's answer per TaskId; tests edit it while the exporter polls."""
    answers: dict[str, dict[str, object]] = {}

    def respond(request: Sent) -> tuple[int, dict[str, str], str]:
        return 200, {}, json.dumps(answers[json.loads(request.body or b"{}")["TaskId"]])

    with ApiMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=respond)
        yield answers


def drive(exporter: Exporter, clock: FakeClock, seconds: int) -> list[bool]:
    """Run the poller like its dispatcher does, one second at a time; health at every second."""
    seen = []
    for _ in range(seconds):
        for key, _action in exporter.poller.take_due():
            exporter.poller.poll_one(key)
        clock.advance(1.0)
        seen.append(exporter.healthy())
    return seen


def test_health_does_not_flap_with_only_rarely_polled_targets(
        table: dict[str, dict[str, object]]) -> None:
    """One Stopped task (every 10 intervals) and one never found (backing off) at 5 s: healthy
    at every second of ten minutes (it answered 503 for 25-45 s of every cycle before)."""
    clock = FakeClock()
    exporter = build_exporter({"poll_interval": "5s",
                               "targets": [{"task_id": "stopped"}, {"task_id": "gone"}]}, clock)
    table.update({"stopped": answer("Stopped", "stopped"),
                  "gone": api_error("FailedOperation.TaskNotExist")})
    exporter.poller.mark_started()
    assert all(drive(exporter, clock, 600))


def test_a_stalled_poller_is_unhealthy(table: dict[str, dict[str, object]]) -> None:
    """When due polls are not handed out, health fails once they are overdue past the limit."""
    clock = FakeClock()
    exporter = build_exporter({"poll_interval": "5s", "targets": [{"task_id": "t"}]}, clock)
    table["t"] = answer("InProgress", "t")
    exporter.poller.mark_started()
    assert all(drive(exporter, clock, 30))
    clock.advance(3 * 5 + 6 * 1 + 5 - 1)  # stall_limit: 3 intervals + 1 attempt of 6 s + 5 s
    assert exporter.healthy()
    clock.advance(10)
    assert not exporter.healthy()


def test_not_ready_while_every_poll_fails_with_an_auth_error(
        table: dict[str, dict[str, object]]) -> None:
    """Bad keys: every target's last poll failed with AuthFailure*, so /-/ready says why; one
    success (or a failure of another kind) makes it ready again."""
    exporter = build_exporter({"targets": [{"task_id": "a"}, {"task_id": "b"}]})
    table.update({"a": api_error("AuthFailure.SignatureFailure"),
                  "b": api_error("AuthFailure.SignatureFailure")})
    poll_all(exporter)
    assert not exporter.ready()
    assert "AuthFailure.SignatureFailure" in exporter.not_ready_reason()
    table["b"] = api_error("InternalError")
    poll_all(exporter)
    assert exporter.ready()
    table.update({"a": api_error("UnauthorizedOperation"),
                  "b": api_error("UnauthorizedOperation")})
    poll_all(exporter)
    assert "UnauthorizedOperation" in exporter.not_ready_reason()
    table["a"] = answer("InProgress", "a")
    poll_all(exporter)
    assert exporter.ready() and exporter.not_ready_reason() == ""


def test_not_ready_before_the_first_cycle() -> None:
    """Before every target was polled once the reason names the first cycle."""
    exporter = build_exporter({"targets": [{"task_id": "a"}]})
    exporter.poller.mark_started()
    assert exporter.not_ready_reason() == "first poll cycle not done yet"


def test_a_wrong_key_is_logged_not_just_counted(table: dict[str, dict[str, object]],
                                                caplog: pytest.LogCaptureFixture) -> None:
    """Every poll failing with AuthFailure.SignatureFailure shows in the log with its
    RequestId, once, and never with the key."""
    caplog.set_level(logging.INFO)
    exporter = build_exporter({"targets": [{"task_id": "a"}, {"task_id": "b"}]})
    table.update({"a": api_error("AuthFailure.SignatureFailure"),
                  "b": api_error("AuthFailure.SignatureFailure")})
    for _ in range(3):
        poll_all(exporter)
    text = caplog.text
    assert text.count("API error started: code=AuthFailure.SignatureFailure") == 1
    assert "request_id=req-err" in text and SECRET_KEY not in text


FAMILY_GROUPS = {
    "budget": {"trtc_exporter_budget_rate", "trtc_exporter_budget_wait_seconds"},
    "API": {"trtc_api_requests_total", "trtc_api_errors_total", "trtc_api_throttled_total"},
    "usage": {"trtc_ai_transcription_in_progress_seconds_total"},
}


def _account_labels(accounts: bool) -> dict[str, set[bool]]:
    """Per family group: whether each of its samples carries ``account`` after two polls of an
    InProgress task and one throttled answer."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    raw: dict[str, object] = {"targets": [{"task_id": "t", "sdk_app_id": 1400000001},
                                          {"task_id": "limited"}]}
    if accounts:
        raw["accounts"] = [{"name": "main"}]
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        mock.add("POST", ENDPOINT + "/", json=answer("InProgress"))
        mock.add("POST", ENDPOINT + "/", json=api_error("RequestLimitExceeded"))
        exporter = build_exporter(raw)
        poll_all(exporter)
        exporter.clock.advance(30.0)
        mock.replace("POST", ENDPOINT + "/", json=answer("InProgress"))
        poll_all(exporter)
    text = generate_latest(exporter.registry).decode()
    seen: dict[str, set[bool]] = {group: set() for group in FAMILY_GROUPS}
    for family in text_string_to_metric_families(text):
        for group, names in FAMILY_GROUPS.items():
            if family.name in {n.removesuffix("_total") for n in names}:
                seen[group] |= {"account" in s.labels for s in family.samples}
    return seen


@pytest.mark.parametrize("accounts", [False, True])
def test_the_account_label_exists_only_with_accounts(accounts: bool) -> None:
    """Budget, API and usage families carry ``account`` exactly when ``accounts:`` is set."""
    assert _account_labels(accounts) == {group: {accounts} for group in FAMILY_GROUPS}


NO_REDIS_PROBE = """
import sys
from prometheus_client import generate_latest
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.cli import main  # noqa: F401 - the console script's imports, all of them
from trtc_exporter.config.model import parse_config
from trtc_exporter.secret import Secret

creds = StaticProvider(Credentials(Secret("id"), Secret("key")), "env")
exporter = Exporter(parse_config({"targets": [{"task_id": "t"}]}), creds)
b"".join(exporter.exposition.render(generate_latest))
print(sorted(m for m in sys.modules
             if m in ("redis", "sqlite3")
             or m.startswith(("redis.", "trtc_exporter.coordination."))))
"""


def test_redis_and_sqlite_are_not_loaded_without_coordination_or_stores() -> None:
    """Building and rendering an exporter without ``coordination:``, registrations or callback
    forwarding never imports redis-py, the coordination modules (about 9 MB of RSS) or sqlite3
    (about 1 MB; issue 16)."""
    out = subprocess.run([sys.executable, "-c", NO_REDIS_PROBE], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_whole_set_task_index_is_kept_only_with_coordination() -> None:
    """Without coordination every task is polled here and found through the poller, so the
    second (api, task id) index of the whole set holds nothing (80 B a target, issue 16)."""
    exporter = build_exporter({"targets": [{"task_id": f"t{i}"} for i in range(5)]})
    assert exporter._task_index == {}
    assert exporter._find_task("ai_transcription", "t3") == (
        "ai_transcription", "ap-guangzhou", "t3", "", "")
    assert exporter._find_task("ai_transcription", "t9") is None
