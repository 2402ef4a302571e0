"""The demo account keeps moving and covers every status the dashboards show (FakeClock)."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from typing import Any

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import (
    MISSING_TASK_ID,
    Scenario,
    SimulatorAPI,
    demo_scenario,
    demo_targets,
    signed_headers,
)
from trtc_exporter.simulator.demo import BUSY_APP, BUSY_APP_QUOTA

T0 = 1_795_514_400.0
ALLOWED_TARGET_KEYS = {"task_id", "sdk_app_id", "session_id", "region", "api", "labels"}


def _poll(api: SimulatorAPI, target: dict[str, Any]) -> str:
    """Ask the API about one exporter target the way the exporter would; status or error code."""
    cred = api.scenario.credentials[0]
    if target.get("api") == "cloud_transcription":
        action = "DescribeCloudTranscription"
        params: dict[str, Any] = {"SdkAppId": target["sdk_app_id"], "TaskId": target["task_id"]}
    elif "session_id" in target:
        action = "DescribeAITranscription"
        params = {"TaskId": "", "SdkAppId": target["sdk_app_id"], "SessionId": target["session_id"]}
    else:
        action, params = "DescribeAITranscription", {"TaskId": target["task_id"]}
    body = json.dumps(params).encode()
    headers = signed_headers(secret_id=cred.secret_id, secret_key=cred.secret_key.reveal(),
                             host="demo", action=action, body=body,
                             timestamp=int(api.clock.time()), region=target["region"])  # fmt: skip
    response = json.loads(api.handle("POST", headers, body).body)["Response"]
    return response["Error"]["Code"] if "Error" in response else str(response["Status"])


def _demo() -> tuple[SimulatorAPI, FakeClock, list[dict[str, Any]]]:
    clock = FakeClock(T0)
    scenario = demo_scenario()
    return SimulatorAPI(scenario, clock), clock, demo_targets(scenario)


def test_every_status_is_visible_within_five_seconds() -> None:
    """In the first five seconds the demo shows all 1.0 statuses, 2.0 ones and a missing task."""
    api, clock, targets = _demo()
    seen: Counter[str] = Counter()
    for _ in range(5):
        seen.update(_poll(api, t) for t in targets)
        clock.advance(1)
    for status in ("Idle", "Preparing", "InProgress", "Stopped", "Exited",
                   "FailedOperation.TaskNotExist"):  # fmt: skip
        assert seen[status] > 0, status
    assert set(seen) <= {"Idle", "Preparing", "InProgress", "Stopped", "Exited",
                         "FailedOperation.TaskNotExist"}  # fmt: skip


def test_demo_keeps_moving_for_hours() -> None:
    """Looping targets change status every few tens of seconds, also six hours after start."""
    api, clock, targets = _demo()
    for offset in (0.0, 6 * 3600.0):
        clock.advance(offset)
        history: dict[int, list[str]] = {i: [] for i in range(len(targets))}
        for _ in range(150):
            for i, target in enumerate(targets):
                history[i].append(_poll(api, target))
            clock.advance(1)
        changes = [sum(a != b for a, b in pairwise(h)) for h in history.values()]
        assert sum(c >= 3 for c in changes) >= 8  # the looping 1.0 and 2.0 tasks
        assert max(changes) <= 15  # transitions come seconds apart, not on every poll


def test_special_cases_are_present() -> None:
    """Missing task, hours-long InProgress, stuck Preparing and a busy app near its quota."""
    api, clock, targets = _demo()
    assert {"task_id": MISSING_TASK_ID, "region": "ap-guangzhou"} in targets
    clock.advance(3600)
    by_prefix: dict[str, list[str]] = {}
    for target in targets:
        prefix = str(target.get("task_id", "sim-session-")).split("-")[1]
        by_prefix.setdefault(prefix, []).append(_poll(api, target))
    assert by_prefix["long"] == ["InProgress"]
    assert by_prefix["stuck"] == ["Preparing"]
    busy = [p for p, s in by_prefix.items() if p.startswith("busy")]
    assert len(busy) == 8 and all(by_prefix[p] == ["InProgress"] for p in busy)
    truth = [t for t, v in api.store.snapshot(clock.time()) if t.sdk_app_id == BUSY_APP]
    assert len(truth) == 8 < BUSY_APP_QUOTA


def test_targets_follow_the_exporter_config_schema() -> None:
    """Targets are task_id or sdk_app_id+session_id entries; 2.0 ones carry api and SdkAppId."""
    scenario = demo_scenario()
    targets = demo_targets(scenario)
    assert len(targets) == len(scenario.tasks) + 1
    for target in targets:
        assert set(target) <= ALLOWED_TARGET_KEYS
        assert ("task_id" in target) != ("session_id" in target)
        if "session_id" in target:
            assert isinstance(target["sdk_app_id"], int)
        if target.get("api") == "cloud_transcription":
            assert isinstance(target["sdk_app_id"], int) and "task_id" in target
    regions = {t["region"] for t in targets}
    assert {"ap-guangzhou", "ap-singapore", "ap-tokyo", "ap-hongkong"} <= regions
    assert sum("session_id" in t for t in targets) == 2
    assert sum(t.get("api") == "cloud_transcription" for t in targets) == 3


def test_same_seed_same_account_and_other_seed_other_keys() -> None:
    """The demo is reproducible per seed, and keys differ between seeds."""
    a, b, c = demo_scenario(7), demo_scenario(7), demo_scenario(8)

    def ids(s: Scenario) -> list[str]:
        return [t.task_id for t in s.tasks]

    assert ids(a) == ids(b) and a.credentials[0].secret_id == b.credentials[0].secret_id
    assert a.credentials[0].secret_key == b.credentials[0].secret_key
    assert a.credentials[0].secret_id != c.credentials[0].secret_id
    assert repr(a.credentials[0].secret_key) == "<secret>"
