"""The budget as a packet capture sees it: the exporter against the simulator, faults switched on.

150 InProgress targets at ``poll_interval: 5s`` need 30 req/s, so the exporter runs at its 20 req/s
budget the whole time. One capture (tshark on ``lo``, kernel timestamps of each API request start,
``capture.py``) covers several phases, each with one simulator fault on every request. For each
phase: no sliding second of the capture holds more than the limit, the simulator throttled
nothing (its window, stamped with the kernel's receive time, must agree with the capture), and its
own peak is the capture's. Skipped only when tshark is not installed (CI installs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.capture import PostCapture, tshark_available
from tests.integration.harness import Exporter, Simulator, dump
from tests.integration.loads import measure_phase, no_load, summarise

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not tshark_available(), reason="tshark is not installed (apt-get install "
                       "tshark); the capture-based budget check needs it"),
]
APP = 1400000001
TARGETS = 150
LIMIT = 20
SETTLE = 4.0
MEASURE = 8.0
PHASES: dict[str, dict[str, Any] | None] = {
    "none": None,
    "huge_body": {"kind": "huge_body", "bytes": 4_000_000},
    "latency": {"kind": "latency", "distribution": "uniform", "min": 0.05, "max": 0.8},
    "connection_reset": {"kind": "connection_reset", "probability": 0.5},
}


def _scenario() -> dict[str, Any]:
    tasks = [{"task_id": f"cap-{i:03d}", "sdk_app_id": APP, "start_offset": -10,
              "phases": {"idle": 0, "preparing": 0, "in_progress": "forever"}}
             for i in range(TARGETS)]  # fmt: skip
    return {"rate_limit": LIMIT, "tasks": tasks}


def test_no_second_of_captured_traffic_exceeds_the_limit_under_faults(tmp_path: Path) -> None:
    """Per fault: capture max in any 1 s <= limit, simulator throttled 0 and agrees with it."""
    sim = Simulator(tmp_path, _scenario())
    exporter = None
    results = {}
    try:
        config = {"api": {"endpoint": sim.url, "rate_limit": LIMIT, "timeout": "6s"},
                  "poll_interval": "5s",
                  "targets": [{"task_id": f"cap-{i:03d}"} for i in range(TARGETS)]}
        exporter = Exporter(tmp_path, config)
        metrics = exporter.url + "/metrics"
        with PostCapture(sim.port) as capture:
            phases = {name: measure_phase(sim, metrics, no_load, fault, SETTLE, MEASURE)
                      for name, fault in PHASES.items()}
        results = {name: {**summarise(phase, capture.times, LIMIT),
                          "stamps": phase["stats"]["arrival_stamps"]}
                   for name, phase in phases.items()}
    except (AssertionError, requests.RequestException):
        print(dump(*(p for p in (sim, exporter) if p is not None)))
        raise
    finally:
        if exporter is not None:
            exporter.stop()
        sim.stop()
    assert capture.dropped == 0, "tshark dropped packets: the capture is incomplete"
    for name, r in results.items():
        assert r["capture_requests"] >= LIMIT * MEASURE * 0.5, (name, r)  # the exporter was busy
        assert r["capture_max_in_window"] <= LIMIT, (name, r)
        assert r["simulator_throttled"] == 0, (name, r)
        # +1: a request at a window edge
        assert r["simulator_max_in_window"] <= r["capture_max_in_window"] + 1, (name, r)
        assert r["stamps"].get("handler", 0) == 0, (name, r)
