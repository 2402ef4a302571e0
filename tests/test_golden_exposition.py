"""The whole /metrics text of a fixed scenario, byte for byte: refactors provably change no output.

The scenario runs on a FakeClock against the local API stand-in (tests/apimock.py): 1.0 task
and session targets and 2.0 targets in several states, a Tencent error, a transport error, a
NotFound and a stale answer. Only facts that differ between checkouts, interpreters and runs (the
git revision and the Python version of ``trtc_exporter_build_info``, the values of client_python's
``process_*`` and the labels of ``python_info``) are normalised. To accept an intended
change of output, run with ``GOLDEN_UPDATE=1`` and review the diff of the fixture files.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.apimock import ApiMock, Sent
from tests.conftest import ENDPOINT, answer, api_error, build_exporter, serving
from trtc_exporter.clock import FakeClock

GOLDEN = Path(__file__).parent / "fixtures" / "golden"
CONFIG = {
    "poll_interval": "10s",
    "apps": {1400000001: {"max_concurrent_tasks": 5, "daily_cost_threshold_usd": 12.5}},
    "targets": [
        {"task_id": "t-run", "sdk_app_id": 1400000001},
        {"task_id": "t-stop"},
        {"sdk_app_id": 1400000001, "session_id": "room-1", "labels": {"team": "live"}},
        {"task_id": "t-gone"},
        {"task_id": "t-broken"},
        {"task_id": "t-denied", "region": "ap-singapore"},
        {"api": "cloud_transcription", "sdk_app_id": 1400000001, "task_id": "c-1",
         "region": "ap-hongkong"},
        {"api": "cloud_transcription", "sdk_app_id": 1400000002, "task_id": "c-2",
         "region": "ap-singapore", "translation": True},
    ],
}
FIRST = {
    "t-run": (200, answer("Preparing", "t-run")),
    "t-stop": (200, answer("Stopped", "t-stop")),
    "room-1": (200, answer("InProgress", "resolved-9", SessionId="room-1")),
    "t-gone": (200, api_error("FailedOperation.TaskNotExist")),
    "t-broken": (502, "<html>bad gateway</html>"),
    "t-denied": (200, api_error("AuthFailure.SignatureFailure")),
    "c-1": (200, answer("Exited", "c-1", start=1795514400)),
    "c-2": (200, answer("InProgress", "c-2", start=1795514100)),
}
SECOND = {**FIRST, "t-run": (200, answer("InProgress", "t-run"))}
BUILD = re.compile(r'(trtc_exporter_build_info\{python_version=")[^"]*(",revision=")[^"]*(")')
# client_python's process and platform collectors: real CPU, memory, fds and interpreter
PROCESS = re.compile(r"^(process_[a-z_]+) \S+$", re.MULTILINE)
PLATFORM = re.compile(r"^python_info\{[^}]*\} ", re.MULTILINE)


def _respond(table: dict[str, tuple[int, object]]) -> object:
    def respond(request: Sent) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        status, payload = table[body.get("TaskId") or body.get("SessionId")]
        return status, {}, payload if isinstance(payload, str) else json.dumps(payload)

    return respond


def _poll(exporter: Any, table: dict[str, tuple[int, object]], skip: str = "") -> None:
    with ApiMock() as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=_respond(table))
        for target in sorted(exporter.poller.targets(), key=lambda t: t.key):
            if target.task_id != skip:
                exporter.poller.poll_one(target.key)


def _scrape(accept: str) -> str:
    clock = FakeClock(auto_advance=True)
    exporter = build_exporter(CONFIG, clock)
    _poll(exporter, FIRST)
    clock.advance(7.0)
    _poll(exporter, SECOND)
    clock.advance(25.0)
    _poll(exporter, SECOND, skip="t-stop")  # t-stop's last answer is now older than 3 intervals
    with serving(exporter) as base:
        response = requests.get(base + "/metrics", headers={"Accept": accept}, timeout=5)
    assert response.status_code == 200
    text = BUILD.sub(r"\1PYTHON\2REVISION\3", response.text)
    return PLATFORM.sub("python_info{PLATFORM} ", PROCESS.sub(r"\1 VALUE", text))


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GOLDEN_UPDATE") == "1":
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("accept", "name"), [
    ("", "metrics.txt"),
    ("application/openmetrics-text; version=1.0.0", "metrics.openmetrics.txt"),
])
def test_metrics_text_matches_the_golden_file(accept: str, name: str) -> None:
    """/metrics renders exactly the recorded text (after normalising the build facts)."""
    _check(name, _scrape(accept))
