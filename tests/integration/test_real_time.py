"""Unit-level behaviours that need real time: real threads, and simulator faults that delay.

Moved here from the unit tests (which never wait for real time): the poller's threaded run
loop, and the simulator's latency and trickle faults measured with the machine's clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.polling.test_poller import AI, FakeApi, task
from tests.simulator.test_faults import SCENARIO, _describe, _fault, _response
from trtc_exporter.api.budget import Budget
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import Config
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore
from trtc_exporter.simulator import SimulatorServer, parse_scenario

pytestmark = pytest.mark.integration


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer.from_scenario(parse_scenario(SCENARIO))
    server.start()
    yield server
    server.stop()


def test_threaded_run_polls_and_stops() -> None:
    """With real threads the poller polls targets and stop() returns promptly."""
    clock = FakeClock(1000.0, auto_advance=False)
    api = FakeApi(clock)
    poller = Poller(Config(poll_interval=10.0), api, StateStore(), Budget({AI: 20}, clock), clock)
    poller.set_targets([task(0), task(1)])
    poller.mark_started()
    poller.start()
    for _ in range(300):
        clock.advance(0.1)
        if len(api.polls) == 2:
            break
        threading.Event().wait(0.005)
    poller.stop(timeout=2.0)
    assert set(api.polls) == {"t0", "t1"}


def test_fixed_latency_delays_the_answer(sim: SimulatorServer) -> None:
    """A fixed latency fault makes a successful answer arrive no sooner than the delay."""
    sim.api.add_fault(_fault(kind="latency", distribution="fixed", seconds=0.3))
    started = time.monotonic()
    r = _describe(sim)
    assert time.monotonic() - started >= 0.3
    assert _response(r)["Status"] == "InProgress"


def test_trickle_body_arrives_slowly_but_complete(sim: SimulatorServer) -> None:
    """trickle_body sends the answer in small chunks; each read is quick, the whole is slow."""
    sim.api.add_fault(_fault(kind="trickle_body", chunk_bytes=40, interval=0.05))
    started = time.monotonic()
    r = _describe(sim, timeout=(1.0, 0.5))
    elapsed = time.monotonic() - started
    chunks = -(-len(r.content) // 40)
    assert elapsed >= (chunks - 1) * 0.05 * 0.9
    assert _response(r)["Status"] == "InProgress"
