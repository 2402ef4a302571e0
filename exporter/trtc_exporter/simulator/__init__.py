"""A faithful fake of the Tencent Cloud API 3.0 endpoint for TRTC AI transcription (1.0 and 2.0).

Used by the exporter's ``--demo``, by integration tests and by benchmarks. Typical use::

    from trtc_exporter.simulator import SimulatorServer, demo_scenario

    with SimulatorServer.from_scenario(demo_scenario()) as sim:
        ...  # point a client at sim.url; read sim.api.stats or GET {sim.url}/_sim/stats

Pure parts (lifecycle, rate limiting, request handling) run on an injectable clock; only
``server`` touches sockets.
"""

from trtc_exporter.simulator.api import SimulatorAPI
from trtc_exporter.simulator.auth import Credential
from trtc_exporter.simulator.demo import MISSING_TASK_ID, demo_scenario, demo_targets
from trtc_exporter.simulator.envelope import ApiResult, Transport
from trtc_exporter.simulator.faultparse import parse_fault
from trtc_exporter.simulator.faults import FaultKind, FaultSpec
from trtc_exporter.simulator.ratelimit import PeakTracker, RateLimiter
from trtc_exporter.simulator.scenario import (
    Scenario,
    ScenarioError,
    TaskSpec,
    load_scenario,
    parse_scenario,
)
from trtc_exporter.simulator.server import SimulatorServer
from trtc_exporter.simulator.signed import post, signed_headers
from trtc_exporter.simulator.tasks import FOREVER, Api, Task, TaskStore, TaskView

__all__ = [
    "FOREVER",
    "MISSING_TASK_ID",
    "Api",
    "ApiResult",
    "Credential",
    "FaultKind",
    "FaultSpec",
    "PeakTracker",
    "RateLimiter",
    "Scenario",
    "ScenarioError",
    "SimulatorAPI",
    "SimulatorServer",
    "Task",
    "TaskSpec",
    "TaskStore",
    "TaskView",
    "Transport",
    "demo_scenario",
    "demo_targets",
    "load_scenario",
    "parse_fault",
    "parse_scenario",
    "post",
    "signed_headers",
]
