"""The simulator's HTTP server: exact limit under concurrency, keep-alive, headers, control API."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
import requests

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import SimulatorServer, parse_scenario, post

T0 = 1_795_514_400.0
SCENARIO = {
    "credentials": [{"secret_id": "AKIDserver", "secret_key": "serverkey"}],
    "tasks": [
        {"task_id": "ai-1", "sdk_app_id": 1400000001, "start_offset": -60,
         "phases": {"idle": 10, "preparing": 10, "in_progress": 100, "stopped": 10}},
        {"task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": 1400000002},
    ],
}  # fmt: skip
DESCRIBE = "DescribeAITranscription"


@pytest.fixture(autouse=True)
def _no_handler_crashes(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail any test during which a server thread logged a crash."""
    with caplog.at_level(logging.ERROR, logger="trtc_exporter.simulator"):
        yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sim(clock: FakeClock) -> Iterator[SimulatorServer]:
    with SimulatorServer.from_scenario(parse_scenario(SCENARIO), clock=clock) as server:
        yield server


def _call(sim: SimulatorServer, clock: FakeClock, params: Any, session: Any = None,
          action: str = DESCRIBE, region: str = "ap-guangzhou") -> requests.Response:  # fmt: skip
    cred = sim.api.scenario.credentials[0]
    with requests.Session() as own:
        return post(session or own, sim.url, cred, action, params, region=region,
                    timestamp=int(clock.time()))  # fmt: skip


def _concurrent(sim: SimulatorServer, clock: FakeClock | None, n: int) -> Counter[str]:
    """Fire n signed requests at once from n threads; count the answer codes."""
    barrier = threading.Barrier(n)
    codes: list[str] = []
    lock = threading.Lock()
    cred = sim.api.scenario.credentials[0]

    def worker() -> None:
        with requests.Session() as session:
            barrier.wait()
            ts = int(clock.time()) if clock is not None else None
            r = post(session, sim.url, cred, DESCRIBE, {"TaskId": "ai-1"}, timestamp=ts)
        error = r.json()["Response"].get("Error")
        with lock:
            codes.append(error["Code"] if error else "Success")

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return Counter(codes)


def _window(sim: SimulatorServer) -> dict[str, Any]:
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    (window,) = [w for w in stats["windows"] if w["action"] == DESCRIBE]
    return dict(window)


def test_limit_is_exact_under_concurrency(sim: SimulatorServer, clock: FakeClock) -> None:
    """60 simultaneous requests in one window: exactly 20 succeed, 40 are RequestLimitExceeded."""
    assert _concurrent(sim, clock, 60) == Counter({"Success": 20, "RequestLimitExceeded": 40})
    window = _window(sim)
    assert window["max_admitted_in_window"] == 20
    assert window["max_in_window"] == 60
    assert window["limit"] == 20


def test_limit_holds_on_the_real_clock() -> None:
    """On the system clock no sliding window ever admits more than 20 of a 60-request burst."""
    with SimulatorServer.from_scenario(parse_scenario(SCENARIO)) as sim:
        codes = _concurrent(sim, None, 60)
        window = _window(sim)
    assert codes["Success"] >= 20
    assert set(codes) <= {"Success", "RequestLimitExceeded"}
    assert window["max_admitted_in_window"] == 20
    assert window["max_in_window"] == 60


def test_session_reuses_one_keep_alive_connection(sim: SimulatorServer, clock: FakeClock) -> None:
    """A requests.Session sends 30 calls over a single TCP connection (HTTP/1.1 keep-alive)."""
    with requests.Session() as session:
        for _ in range(15):
            assert _call(sim, clock, {"TaskId": "ai-1"}, session).status_code == 200
            clock.advance(0.1)
        for _ in range(15):
            r = session.get(sim.url + "/_sim/tasks", timeout=5)
            assert r.status_code == 200
    assert sim.connections_accepted == 1


def test_answers_carry_plain_json_content_type_length_and_clock_date(
    sim: SimulatorServer, clock: FakeClock
) -> None:
    """Content-Type is exactly application/json; Date follows the simulator's clock."""
    clock.advance(3600)
    r = _call(sim, clock, {"TaskId": "ai-1"})
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["Content-Length"]) == len(r.content)
    assert parsedate_to_datetime(r.headers["Date"]).timestamp() == int(T0 + 3600)


def test_other_paths_and_methods(sim: SimulatorServer) -> None:
    """Paths other than / are 404; GET / gets an API error envelope."""
    assert requests.get(sim.url + "/v2/", timeout=5).status_code == 404
    r = requests.get(sim.url + "/", timeout=5)
    assert r.json()["Response"]["Error"]["Code"] == "InvalidParameter"


def test_tasks_endpoint_tells_the_truth(sim: SimulatorServer, clock: FakeClock) -> None:
    """GET /_sim/tasks lists each task's status as the API reports it, NotFound when gone."""
    truth = requests.get(sim.url + "/_sim/tasks", timeout=5).json()
    by_id = {t["task_id"]: t for t in truth["tasks"]}
    assert by_id["ai-1"]["status"] == "InProgress"
    answer = _call(sim, clock, {"TaskId": "ai-1"}).json()["Response"]
    assert by_id["ai-1"]["status"] == answer["Status"]
    assert by_id["cloud-1"] == {
        "task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": 1400000002,
        "session_id": None, "region": "ap-guangzhou", "status": "Idle", "start_time": T0,
        "exists": True, "repeating": False,
    }  # fmt: skip
    clock.advance(3600)
    truth = requests.get(sim.url + "/_sim/tasks", timeout=5).json()
    assert {t["task_id"]: t["status"] for t in truth["tasks"]}["ai-1"] == "NotFound"


def test_tasks_can_be_created_at_runtime(sim: SimulatorServer, clock: FakeClock) -> None:
    """POST /_sim/tasks adds a task; a duplicate is 409, a bad entry 400 with field paths."""
    new = {"task_id": "late", "sdk_app_id": 7, "phases": {"idle": 0, "preparing": 1}}
    r = requests.post(sim.url + "/_sim/tasks", json=new, timeout=5)
    assert r.status_code == 200 and r.json()["task_id"] == "late"
    assert _call(sim, clock, {"TaskId": "late"}).json()["Response"]["Status"] == "Preparing"
    assert requests.post(sim.url + "/_sim/tasks", json=new, timeout=5).status_code == 409
    bad = requests.post(sim.url + "/_sim/tasks", json={"task_id": "x", "sdk_app_id": "7"},
                        timeout=5)  # fmt: skip
    assert bad.status_code == 400
    assert bad.json() == {"errors": ["task.sdk_app_id: must be an integer >= 1, got '7'"]}


def test_faults_endpoint_adds_lists_and_clears(sim: SimulatorServer, clock: FakeClock) -> None:
    """Faults sent at runtime take effect at once, are listed, and DELETE removes them."""
    r = requests.post(sim.url + "/_sim/faults", timeout=5,
                      json={"faults": [{"kind": "internal_error", "duration": "1m"}]})  # fmt: skip
    assert r.status_code == 200
    (listed,) = r.json()["faults"]
    assert (listed["kind"], listed["duration"], listed["live"]) == ("internal_error", 60, True)
    assert _call(sim, clock, {"TaskId": "ai-1"}).json()["Response"]["Error"]["Code"] == (
        "InternalError"
    )
    assert requests.delete(sim.url + "/_sim/faults", timeout=5).json()["faults"] == []
    assert "Error" not in _call(sim, clock, {"TaskId": "ai-1"}).json()["Response"]
    bad = requests.post(sim.url + "/_sim/faults", json={"kind": "latency", "sigma": -1}, timeout=5)
    assert bad.json() == {"errors": ["faults[0].sigma: must be a number >= 0, got -1"]}


def test_rate_limit_endpoint_sets_and_drops_limits(sim: SimulatorServer, clock: FakeClock) -> None:
    """POST /_sim/rate_limit changes a limit for good, or temporarily with a duration."""
    url = sim.url + "/_sim/rate_limit"
    r = requests.post(url, json={"limit": 5, "action": DESCRIBE}, timeout=5)
    assert r.json()["rate_limits"][DESCRIBE] == 5
    r = requests.post(url, json={"limit": 2, "duration": 10}, timeout=5)
    assert r.json()["rate_limits"]["DescribeCloudTranscription"] == 2
    clock.advance(11)
    limits = requests.get(url, timeout=5).json()["rate_limits"]
    assert (limits[DESCRIBE], limits["DescribeCloudTranscription"]) == (5, 20)
    bad = requests.post(url, json={"limit": -1, "action": "Nope"}, timeout=5)
    assert bad.status_code == 400 and len(bad.json()["errors"]) == 2


def test_stats_and_reset(sim: SimulatorServer, clock: FakeClock) -> None:
    """Stats count requests per action, code and second; reset_stats starts from zero."""
    for task_id in ("ai-1", "ai-1", "missing"):
        _call(sim, clock, {"TaskId": task_id})
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["requests_total"] == 3
    assert stats["by_action"] == {DESCRIBE: {"Success": 2, "FailedOperation.TaskNotExist": 1}}
    assert stats["per_second"] == {DESCRIBE: {str(int(T0)): 3}}
    assert stats["max_in_window"] == 3
    assert requests.post(sim.url + "/_sim/reset_stats", timeout=5).json() == {"ok": True}
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert (stats["requests_total"], stats["windows"], stats["by_code"]) == (0, [], {})


def test_unknown_control_endpoint_and_bad_json(sim: SimulatorServer) -> None:
    """Unknown control paths are 404 with the list of endpoints; bad JSON is 400."""
    r = requests.get(sim.url + "/_sim/nothing", timeout=5)
    assert r.status_code == 404 and "/_sim/stats" in r.json()["known"]
    r = requests.post(sim.url + "/_sim/faults", data=b"{", timeout=5)
    assert r.status_code == 400 and r.json()["errors"][0].startswith("body: not valid JSON")


def test_stop_closes_idle_keep_alive_connections(clock: FakeClock) -> None:
    """After stop, a session's pooled connection is gone and the port refuses new ones."""
    server = SimulatorServer.from_scenario(parse_scenario(SCENARIO), clock=clock)
    url = server.start()
    session = requests.Session()
    assert session.get(url + "/_sim/stats", timeout=5).status_code == 200
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url + "/_sim/stats", timeout=5)
    session.close()


def test_body_is_read_per_content_length_for_every_request_on_a_connection(
    sim: SimulatorServer, clock: FakeClock
) -> None:
    """Pipelined keep-alive requests with bodies are parsed one after another correctly."""
    with requests.Session() as session:
        answers = [_call(sim, clock, {"TaskId": t}, session).json()["Response"]
                   for t in ("ai-1", "missing", "ai-1")]  # fmt: skip
    assert [a.get("Status") or a["Error"]["Code"] for a in answers] == [
        "InProgress",
        "FailedOperation.TaskNotExist",
        "InProgress",
    ]


def test_throttling_endpoint_switches_the_model_and_the_wording(
    sim: SimulatorServer, clock: FakeClock
) -> None:
    """POST /_sim/throttling makes refusals count and messages plain; bad values are 400."""
    url = sim.url + "/_sim/throttling"
    assert requests.get(url, timeout=5).json() == {"count_throttled": False,
                                                   "limit_message": "numbers"}
    r = requests.post(url, json={"count_throttled": True, "limit_message": "plain"}, timeout=5)
    assert r.json() == {"count_throttled": True, "limit_message": "plain"}
    assert sim.api.limiter.count_throttled and sim.api.plain_limit_message
    codes = _concurrent(sim, clock, 25)
    assert codes == Counter({"Success": 20, "RequestLimitExceeded": 5})
    assert _window(sim)["throttled"] == 5
    bad = requests.post(url, json={"count_throttled": "yes", "limit_message": "x", "y": 1},
                        timeout=5)
    assert bad.status_code == 400 and len(bad.json()["errors"]) == 3


def test_stats_tell_where_arrival_times_came_from_and_the_handler_lag() -> None:
    """On the system clock every API request has a kernel stamp and a small, non-negative lag."""
    with SimulatorServer.from_scenario(parse_scenario(SCENARIO)) as sim:
        _concurrent(sim, None, 5)
        stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["arrival_stamps"] == {"kernel": 5}
    assert 0 <= stats["arrival_lag_seconds"]["mean"] <= stats["arrival_lag_seconds"]["max"] < 5
