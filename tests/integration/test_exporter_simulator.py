"""The installed exporter against the installed simulator, observed only from the outside."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.harness import Exporter, Simulator, dump, wait_for

pytestmark = pytest.mark.integration
APP = 1400000001
PHASES_FOREVER = {"idle": "forever"}


def ai_task(task_id: str, **kw: Any) -> dict[str, Any]:
    return {"task_id": task_id, "api": "ai_transcription", "sdk_app_id": APP, **kw}


def exporter_config(sim: Simulator, targets: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"api": {"endpoint": sim.url, "max_retries": 0, "timeout": "2s"},
            "poll_interval": "1s", "targets": targets, **extra}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Holds the processes a test starts and stops them (dumping logs when the test failed)."""
    procs: dict[str, Any] = {}
    yield procs
    for proc in procs.values():
        proc.stop()


def test_status_gauges_match_simulator_truth(tmp_path: Path, stack: dict[str, Any]) -> None:
    """Every target's StateSet shows the status the simulator holds for it."""
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": [
        ai_task("t-idle", phases={"idle": "forever"}),
        ai_task("t-prep", phases={"idle": 0, "preparing": "forever"}),
        ai_task("t-run", phases={"idle": 0, "preparing": 0, "in_progress": "forever"}),
        ai_task("t-stop", start_offset=-100,
                phases={"idle": 0, "preparing": 0, "in_progress": 1, "stopped": "forever"}),
        ai_task("t-sess", session_id="room-1",
                phases={"idle": 0, "preparing": 0, "in_progress": "forever"}),
        {"task_id": "c-run", "api": "cloud_transcription", "sdk_app_id": APP,
         "region": "ap-hongkong", "phases": {"idle": 0, "in_progress": "forever"}},
    ]})
    targets = [{"task_id": t} for t in ("t-idle", "t-prep", "t-run", "t-stop", "t-missing")]
    targets += [{"sdk_app_id": APP, "session_id": "room-1"},
                {"api": "cloud_transcription", "sdk_app_id": APP, "task_id": "c-run",
                 "region": "ap-hongkong"}]
    exp = stack["exp"] = Exporter(tmp_path, exporter_config(sim, targets))
    truth = sim.truth()
    shown = exp.statuses()
    expected = {"t-idle": truth["t-idle"], "t-prep": truth["t-prep"], "t-run": truth["t-run"],
                "t-stop": truth["t-stop"], "room-1": truth["t-sess"], "c-run": truth["c-run"],
                "t-missing": "NotFound"}
    assert expected == {"t-idle": "Idle", "t-prep": "Preparing", "t-run": "InProgress",
                        "t-stop": "Stopped", "room-1": "InProgress", "c-run": "InProgress",
                        "t-missing": "NotFound"}
    assert shown == expected, dump(exp, sim)
    assert exp.value("trtc_ai_transcription_info", session_id="room-1",
                     resolved_task_id="t-sess") == 1


def test_status_change_shows_within_one_interval(tmp_path: Path, stack: dict[str, Any]) -> None:
    """A task leaving Idle is shown as Preparing within one poll interval (plus a scrape)."""
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": [
        ai_task("t-move", phases={"idle": 6, "preparing": "forever"})]})
    exp = stack["exp"] = Exporter(tmp_path, exporter_config(sim, [{"task_id": "t-move"}]))
    wait_for(lambda: sim.truth()["t-move"] == "Preparing", 15, "simulator transition")
    changed_at = time.monotonic()
    wait_for(lambda: exp.statuses().get("t-move") == "Preparing", 5, "exporter to show it")
    assert time.monotonic() - changed_at <= 1.0 + 0.5, dump(exp, sim)


def test_error_counters_match_what_the_simulator_answered(tmp_path: Path,
                                                          stack: dict[str, Any]) -> None:
    """Per code, the exporter's error counters equal the simulator's served counts."""
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": [
        ai_task("t-ok", phases={"idle": 0, "preparing": 0, "in_progress": "forever"}),
        ai_task("t-500", phases={"idle": "forever"}, faults=[{"kind": "internal_error"}]),
        ai_task("t-502", phases={"idle": "forever"}, faults=[{"kind": "http_error",
                                                               "status": 502}]),
    ]})
    targets = [{"task_id": t} for t in ("t-ok", "t-500", "t-502", "t-missing")]
    exp = stack["exp"] = Exporter(tmp_path, exporter_config(sim, targets))
    time.sleep(3)
    mapping = {"InternalError": "InternalError", "FailedOperation.TaskNotExist":
               "FailedOperation.TaskNotExist", "http_502": "HTTP5xx"}
    before = _exporter_counts(exp)
    served = sim.control("GET", "stats")["by_code"]
    after = _exporter_counts(exp)
    for sim_code, our_code in mapping.items():
        assert before.get(our_code, 0) <= served.get(sim_code, 0) <= after.get(our_code, 0), (
            sim_code, before, served, after)
    assert before["_requests"] <= sum(served.values()) <= after["_requests"]
    assert served.get("Success", 0) > 0


def _exporter_counts(exp: Exporter) -> dict[str, float]:
    counts: dict[str, float] = {"_requests": 0.0}
    for name, labels, value in exp.samples():
        if name == "trtc_api_errors_total":
            counts[labels["code"]] = counts.get(labels["code"], 0.0) + value
        elif name == "trtc_api_requests_total":
            counts["_requests"] += value
    return counts


def test_budget_is_never_exceeded_and_nearly_fully_used(tmp_path: Path,
                                                        stack: dict[str, Any]) -> None:
    """300 targets at 5 s (60 req/s wanted): the API never sees > 20 in any 1 s, yet ≥ 97 %."""
    tasks = [ai_task(f"t{i:03d}", phases={"idle": 0, "preparing": 0, "in_progress": "forever"})
             for i in range(300)]
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": tasks})
    config = exporter_config(sim, [{"task_id": f"t{i:03d}"} for i in range(300)],
                             poll_interval="5s")
    exp = stack["exp"] = Exporter(tmp_path, config, wait_ready=False)
    time.sleep(3)
    sim.control("POST", "reset_stats")
    time.sleep(10)
    stats = sim.control("GET", "stats")
    per_second = stats["per_second"]["DescribeAITranscription"]
    seconds = sorted(int(s) for s in per_second)
    full = [per_second[str(s)] for s in seconds[1:-1]]  # whole seconds only
    assert stats["max_in_window"] <= 20, dump(exp, sim)
    assert "RequestLimitExceeded" not in stats["by_code"]
    assert sum(full) / len(full) >= 0.97 * 20, full
    assert requests.get(exp.url + "/metrics", timeout=5).status_code == 200


def test_temporary_limit_drop_is_survived(tmp_path: Path, stack: dict[str, Any]) -> None:
    """When the API's limit drops to 10/s the exporter throttles down, keeps serving, recovers."""
    tasks = [ai_task(f"t{i:03d}", phases={"idle": 0, "preparing": 0, "in_progress": "forever"})
             for i in range(60)]
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": tasks})
    config = exporter_config(sim, [{"task_id": f"t{i:03d}"} for i in range(60)],
                             poll_interval="4s")  # 15 req/s: fine at 20/s, too much at 10/s
    exp = stack["exp"] = Exporter(tmp_path, config)
    sim.control("POST", "rate_limit", {"limit": 10, "duration": 6})
    time.sleep(4)
    assert requests.get(exp.url + "/metrics", timeout=1).status_code == 200
    effective = exp.value("trtc_exporter_budget_rate", action="DescribeAITranscription",
                          kind="effective")
    assert effective is not None and effective <= 10.5, dump(exp, sim)
    assert (exp.value("trtc_api_throttled_total") or 0) >= 1
    assert exp.proc.poll() is None
    status = exp.statuses()
    assert list(status.values()).count("InProgress") == 60


def test_sigterm_stops_promptly_with_exit_zero(tmp_path: Path, stack: dict[str, Any]) -> None:
    """SIGTERM ends polling and the process exits 0 within 5 s."""
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": [ai_task("t1")]})
    exp = Exporter(tmp_path, exporter_config(sim, [{"task_id": "t1"}]))
    started = time.monotonic()
    assert exp.stop() == 0
    assert time.monotonic() - started < 5.5
    assert "stopped" in exp.output()


def test_mixed_generations_use_both_budgets(tmp_path: Path, stack: dict[str, Any]) -> None:
    """1.0 and 2.0 targets together reach close to 40 req/s with no RequestLimitExceeded."""
    forever = {"idle": 0, "in_progress": "forever"}
    tasks = [ai_task(f"a{i:03d}", phases={**forever, "preparing": 0}) for i in range(200)]
    tasks += [{"task_id": f"c{i:03d}", "api": "cloud_transcription", "sdk_app_id": APP,
               "phases": forever} for i in range(200)]
    sim = stack["sim"] = Simulator(tmp_path, {"tasks": tasks})
    targets: list[dict[str, Any]] = [{"task_id": f"a{i:03d}"} for i in range(200)]
    targets += [{"api": "cloud_transcription", "sdk_app_id": APP, "task_id": f"c{i:03d}"}
                for i in range(200)]
    exp = stack["exp"] = Exporter(tmp_path, exporter_config(sim, targets, poll_interval="4s"),
                                  wait_ready=False)
    time.sleep(3)
    sim.control("POST", "reset_stats")
    time.sleep(8)
    stats = sim.control("GET", "stats")
    assert "RequestLimitExceeded" not in stats["by_code"], stats["by_code"]
    assert stats["max_in_window"] <= 20, dump(exp, sim)
    rates = []
    for action in ("DescribeAITranscription", "DescribeCloudTranscription"):
        per_second = stats["per_second"][action]
        seconds = sorted(int(s) for s in per_second)
        full = [per_second[str(s)] for s in seconds[1:-1]]
        rates.append(sum(full) / len(full))
    assert sum(rates) >= 0.95 * 40, (rates, dump(exp, sim))
