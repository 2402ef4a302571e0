"""Every fault kind, observed by a real HTTP client (requests) against the simulator on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from random import Random
from typing import Any

import pytest
import requests

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import (
    FaultKind,
    FaultSpec,
    SimulatorAPI,
    SimulatorServer,
    parse_fault,
    parse_scenario,
    post,
)
from trtc_exporter.simulator.faults import FaultSet
from trtc_exporter.simulator.scenario import KNOWN_ACTIONS

SCENARIO = {
    "credentials": [{"secret_id": "AKIDfaults", "secret_key": "faultkey"}],
    "tasks": [
        {"task_id": "ai-1", "sdk_app_id": 1400000001, "session_id": "s-1", "start_offset": -60,
         "phases": {"in_progress": "forever"}},
        {"task_id": "ai-2", "sdk_app_id": 1400000001, "start_offset": -60,
         "phases": {"in_progress": "forever"}},
        {"task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": 1400000002,
         "start_offset": -60},
    ],
}  # fmt: skip
DESCRIBE = "DescribeAITranscription"


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer.from_scenario(parse_scenario(SCENARIO))
    server.start()
    yield server
    server.stop()


def _fault(**data: Any) -> FaultSpec:
    spec, errors = parse_fault(data, "fault", KNOWN_ACTIONS)
    assert spec is not None, errors
    return spec


def _describe(sim: SimulatorServer, task_id: str = "ai-1", **kw: Any) -> requests.Response:
    cred = sim.api.scenario.credentials[0]
    with requests.Session() as session:
        return post(session, sim.url, cred, DESCRIBE, {"TaskId": task_id}, **kw)


def _response(r: requests.Response) -> dict[str, Any]:
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    body: dict[str, Any] = r.json()["Response"]
    return body


def _code(r: requests.Response) -> str | None:
    response = _response(r)
    return response["Error"]["Code"] if "Error" in response else None


def test_timeout_outlasts_the_client_timeout(sim: SimulatorServer) -> None:
    """A timeout fault holds the answer longer than the client waits, so the client times out."""
    sim.api.add_fault(_fault(kind="timeout", seconds=2))
    with pytest.raises(requests.exceptions.ReadTimeout):
        _describe(sim, timeout=(1.0, 0.3))


@pytest.mark.parametrize("status", [500, 502, 503])
def test_http_errors_come_with_an_html_body(sim: SimulatorServer, status: int) -> None:
    """Gateway failures are non-200 with an HTML page, not the JSON envelope."""
    sim.api.add_fault(_fault(kind="http_error", status=status))
    r = _describe(sim)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "text/html"
    assert f"<title>{status} " in r.text


def test_malformed_json_does_not_parse(sim: SimulatorServer) -> None:
    """A malformed body is HTTP 200 application/json that no JSON parser accepts."""
    sim.api.add_fault(_fault(kind="malformed_json"))
    r = _describe(sim)
    assert (r.status_code, r.headers["Content-Type"]) == (200, "application/json")
    with pytest.raises(requests.exceptions.JSONDecodeError):
        r.json()


def test_missing_fields_are_removed_from_a_good_answer(sim: SimulatorServer) -> None:
    """missing_fields drops the named fields, or the whole Response envelope."""
    sim.api.add_fault(_fault(kind="missing_fields", fields=["Status", "StartTime"]))
    assert set(_response(_describe(sim, "ai-2"))) == {"TaskId", "RequestId"}
    sim.api.faults.clear()
    sim.api.add_fault(_fault(kind="missing_fields", fields=["Response"]))
    assert "Response" not in _describe(sim).json()


def test_wrong_types_break_the_field_types(sim: SimulatorServer) -> None:
    """wrong_types sends Status as a number, StartTime with the other type, TaskId as null."""
    sim.api.add_fault(_fault(kind="wrong_types"))
    response = _response(_describe(sim))
    assert isinstance(response["Status"], int)
    assert isinstance(response["StartTime"], int)
    assert response["TaskId"] is None


def test_huge_body_is_as_large_as_asked_and_still_json(sim: SimulatorServer) -> None:
    """huge_body pads a good answer to the requested size."""
    sim.api.add_fault(_fault(kind="huge_body", bytes=3_000_000))
    r = _describe(sim)
    assert abs(len(r.content) - 3_000_000) < 100
    assert _response(r)["Status"] == "InProgress"


def test_unknown_status_is_passed_through(sim: SimulatorServer) -> None:
    """unknown_status replaces Status with a value no client knows."""
    sim.api.add_fault(_fault(kind="unknown_status", status="Hibernating"))
    assert _response(_describe(sim))["Status"] == "Hibernating"


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"kind": "unknown_error_code", "code": "ResourceUnavailable.NewThing"},
         "ResourceUnavailable.NewThing"),
        ({"kind": "internal_error"}, "InternalError"),
        ({"kind": "request_limit_storm"}, "RequestLimitExceeded"),
        ({"kind": "auth_failure"}, "AuthFailure.SignatureFailure"),
        ({"kind": "auth_failure", "code": "AuthFailure.UnauthorizedOperation"},
         "AuthFailure.UnauthorizedOperation"),
    ],
)  # fmt: skip
def test_error_faults_answer_their_code(
    sim: SimulatorServer, fault: dict[str, Any], code: str
) -> None:
    """Forced API errors arrive as HTTP 200 envelopes with the chosen Error.Code."""
    sim.api.add_fault(_fault(**fault))
    assert _code(_describe(sim)) == code


def test_connection_reset_aborts_the_connection(sim: SimulatorServer) -> None:
    """connection_reset closes the socket without an answer; the next connection works again."""
    sim.api.add_fault(_fault(kind="connection_reset", duration=60))
    with pytest.raises(requests.exceptions.ConnectionError):
        _describe(sim)
    sim.api.faults.clear()
    assert _code(_describe(sim)) is None


def test_rate_limit_drop_is_temporary() -> None:
    """The limit drops to 10/s for the fault's duration, then returns to 20/s."""
    clock = FakeClock(1_795_514_400.0)
    with SimulatorServer.from_scenario(parse_scenario(SCENARIO), clock=clock) as sim:
        sim.api.add_fault(_fault(kind="rate_limit_drop", limit=10, duration=30))

        def burst() -> int:
            codes = [_code(_describe(sim, timestamp=int(clock.time()))) for _ in range(25)]
            return codes.count(None)

        assert burst() == 10
        clock.advance(31)
        assert burst() == 20


def test_task_fault_hits_only_its_task_including_session_lookups(sim: SimulatorServer) -> None:
    """A fault bound to a task hits queries by its TaskId or SessionId, and no other task."""
    sim.api.add_fault(_fault(kind="internal_error", task_id="ai-1"))
    assert _code(_describe(sim, "ai-1")) == "InternalError"
    assert _code(_describe(sim, "ai-2")) is None
    cred = sim.api.scenario.credentials[0]
    with requests.Session() as s:
        r = post(s, sim.url, cred, DESCRIBE, {"TaskId": "", "SdkAppId": 1400000001,
                                              "SessionId": "s-1"})  # fmt: skip
    assert _code(r) == "InternalError"


def test_faults_can_be_limited_to_actions(sim: SimulatorServer) -> None:
    """A fault restricted to DescribeCloudTranscription leaves DescribeAITranscription alone."""
    sim.api.add_fault(_fault(kind="internal_error", actions=["DescribeCloudTranscription"]))
    assert _code(_describe(sim)) is None
    cred = sim.api.scenario.credentials[0]
    with requests.Session() as s:
        r = post(s, sim.url, cred, "DescribeCloudTranscription",
                 {"SdkAppId": 1400000002, "TaskId": "cloud-1"})  # fmt: skip
    assert _code(r) == "InternalError"


def test_fault_after_and_duration_follow_the_clock() -> None:
    """A fault with after=5 and duration=10 is active from t+5 to t+15 only."""
    clock = FakeClock(1_795_514_400.0)
    api = SimulatorAPI(parse_scenario(SCENARIO), clock)
    api.add_fault(_fault(kind="internal_error", after=5, duration=10))
    codes = []
    for step in (0, 5, 9.9, 0.1):
        clock.advance(step)
        body = json.dumps({"TaskId": "ai-2"}).encode()
        codes.append(api.handle("POST", {}, body).code)
    assert codes == ["InvalidParameter", "InternalError", "InternalError", "InvalidParameter"]
    assert api.faults.active(clock.time()) == []


def test_probability_is_reproducible_with_the_seed() -> None:
    """A fault with probability 0.3 hits about 30% of requests, identically for the same seed."""

    def hits(seed: int) -> list[bool]:
        faults = FaultSet(Random(seed))
        faults.add(_fault(kind="internal_error", probability=0.3), 0.0)
        return [bool(faults.pick(DESCRIBE, None, 1.0)) for _ in range(1000)]

    assert hits(1) == hits(1)
    assert 240 < sum(hits(1)) < 360


def test_latency_distributions_sample_within_their_shape() -> None:
    """uniform stays within [min, max]; lognormal has the configured median."""
    faults = FaultSet(Random(3))
    uniform = _fault(kind="latency", distribution="uniform", min=0.1, max=0.2)
    samples = [faults.latency(uniform) for _ in range(500)]
    assert min(samples) >= 0.1 and max(samples) <= 0.2
    lognormal = _fault(kind="latency", distribution="lognormal", median=0.05, sigma=0.5)
    draws = sorted(faults.latency(lognormal) for _ in range(2001))
    assert 0.045 < draws[1000] < 0.055


def test_stats_count_transport_faults_by_name(sim: SimulatorServer) -> None:
    """Stats record the fault name as the code of answers a fault produced."""
    sim.api.add_fault(_fault(kind="http_error", status=503, duration=60))
    _describe(sim)
    stats = requests.get(sim.url + "/_sim/stats", timeout=5).json()
    assert stats["by_code"] == {"http_503": 1}


def test_every_fault_kind_is_covered_here() -> None:
    """This module or its real-time half (tests/integration/test_real_time.py) exercises every
    FaultKind (guards against adding a kind without a test)."""
    here = Path(__file__)
    source = "".join(p.read_text(encoding="utf-8") for p in (
        here, here.parents[1] / "integration" / "test_real_time.py"))
    assert all(f'"{kind.value}"' in source for kind in FaultKind)


def test_spec_built_in_code_uses_documented_defaults() -> None:
    """A FaultSpec made without parameters falls back to the parser's defaults."""
    assert FaultSpec(FaultKind.LATENCY).num("seconds") == 0.1
    assert FaultSpec(FaultKind.HTTP_ERROR).num("status") == 502
    assert FaultSpec(FaultKind.MISSING_FIELDS).strings("fields") == ("Status",)
    with pytest.raises(ValueError, match="limit"):
        FaultSpec(FaultKind.RATE_LIMIT_DROP).num("limit")


def test_simulator_bug_becomes_internal_error_not_a_hang_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """If the simulator itself fails on a request, the client gets InternalError; it is logged."""
    api = SimulatorAPI(parse_scenario(SCENARIO), FakeClock(1_795_514_400.0))
    api.add_fault(FaultSpec(FaultKind.RATE_LIMIT_DROP))  # no limit: unusable on purpose
    result = api.handle("POST", {}, b"{}")
    assert json.loads(result.body)["Response"]["Error"]["Code"] == "InternalError"
    assert "simulator failed" in caplog.text
