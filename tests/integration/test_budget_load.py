"""The budget under load, as a packet capture sees it: scrapers, a registration flood, busy CPU.

1 000 InProgress targets at ``poll_interval: 15s`` need 67 req/s, so the exporter runs at its
20 req/s budget throughout. One capture (tshark on ``lo``, kernel timestamps of each API request
start, ``capture.py``) covers four phases, each with one load (``loads.py``): 20 concurrent
scrapers of /metrics, one-target registrations and removals back to back, two busy-loop
processes saturating both CPUs, then all three at once. In each phase no sliding second of the
capture may hold more than the limit. Skipped only when tshark is not installed (CI installs it).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.capture import PostCapture, tshark_available
from tests.integration.harness import Exporter, Simulator, dump, wait_for
from tests.integration.loads import (
    Load,
    RegistrationFlood,
    Scrapers,
    busy_loops,
    combined,
    measure_phase,
    summarise,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not tshark_available(), reason="tshark is not installed (apt-get install "
                       "tshark); the capture-based budget check needs it"),
]
APP = 1400000001
TARGETS = 1000
LIMIT = 20
SETTLE = 3.0
MEASURE = 8.0
TOKEN = "integration-budget-load-token"


def _scenario() -> dict[str, Any]:
    tasks = [{"task_id": f"load-{i:04d}", "sdk_app_id": APP, "start_offset": -10,
              "phases": {"idle": 0, "preparing": 0, "in_progress": "forever"}}
             for i in range(TARGETS)]  # fmt: skip
    return {"rate_limit": LIMIT, "tasks": tasks}


def test_no_second_of_captured_traffic_exceeds_the_limit_under_load(tmp_path: Path) -> None:
    """Per load (scrapers, registration flood, busy CPU): capture max in any 1 s <= limit."""
    (tmp_path / "token").write_text(TOKEN + "\n")
    sim = Simulator(tmp_path, _scenario())
    exporter = None
    results = {}
    try:
        config = {"api": {"endpoint": sim.url, "rate_limit": LIMIT, "timeout": "6s"},
                  "poll_interval": "15s", "max_targets": 5 * TARGETS,
                  "registration": {"enabled": True, "db_path": str(tmp_path / "registry.db"),
                                   "bearer_token_file": str(tmp_path / "token")},
                  "targets": [{"task_id": f"load-{i:04d}"} for i in range(TARGETS)]}
        exporter = Exporter(tmp_path, config, wait_ready=False)  # a first cycle takes 50 s
        wait_for(lambda: requests.get(exporter.url + "/-/healthy", timeout=1).ok, 30,
                 "exporter to listen")
        url = exporter.url
        loads: dict[str, Load] = {
            "scrapers": lambda s: Scrapers(url + "/metrics", 20, s),
            "registration flood": lambda s: RegistrationFlood(url, TOKEN, s),
            "busy cpu": functools.partial(busy_loops, 2),
        }
        every = tuple(loads.values())
        loads["all three at once"] = lambda s: combined(*every, seconds=s)
        with PostCapture(sim.port) as capture:
            phases = {name: measure_phase(sim, url + "/metrics", load, None, SETTLE, MEASURE)
                      for name, load in loads.items()}
        results = {name: summarise(phase, capture.times, LIMIT) for name, phase in phases.items()}
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
        assert r["scrapes"] > 0, (name, r)  # the load's scrapes, or the probe's, were answered
        assert r["capture_max_in_window"] <= LIMIT, (name, r)
