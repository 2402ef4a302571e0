"""``--demo``: the exporter against an embedded simulator, no account and no config file needed.

This is the one product module that imports the simulator (also for the ``simulate``
subcommand); tests/test_architecture.py keeps it that way.

The simulator runs in-process on a free loopback port with generated (fake) keys; the exporter
polls every demo task every two seconds, so every metric family is visible within seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.config.model import parse_config
from trtc_exporter.secret import Secret
from trtc_exporter.simulator import SimulatorServer, demo_scenario, demo_targets
from trtc_exporter.simulator.cli import main as simulator_main
from trtc_exporter.simulator.demo import BUSY_APP, BUSY_APP_QUOTA
from trtc_exporter.simulator.scenario import Scenario

log = logging.getLogger("trtc_exporter")
DEMO_POLL_INTERVAL = "2s"


def demo_config(scenario: Scenario, url: str) -> dict[str, Any]:
    """The config an operator would write for the demo account (task targets name their app)."""
    apps = {task.task_id: task.sdk_app_id for task in scenario.tasks}
    targets = []
    for entry in demo_targets(scenario):
        if "session_id" not in entry and "sdk_app_id" not in entry and entry["task_id"] in apps:
            entry = {**entry, "sdk_app_id": apps[entry["task_id"]]}
        if str(entry.get("task_id", "")).startswith("sim-long-"):
            entry = {**entry, "translation": True}  # shows translation minutes and cost
        targets.append(entry)
    return {
        "api": {"endpoint": url, "rate_limit": scenario.rate_limit},
        "poll_interval": DEMO_POLL_INTERVAL,
        "apps": {BUSY_APP: {"max_concurrent_tasks": BUSY_APP_QUOTA}},
        "targets": targets,
    }


class DemoExporter(Exporter):
    """An Exporter that owns its simulator and stops it on shutdown."""

    simulator: SimulatorServer

    def stop(self, timeout: float = 5.0) -> None:
        super().stop(timeout)
        self.simulator.stop()


def build_demo_exporter(shard: tuple[int, int] = (0, 1), seed: int = 7) -> DemoExporter:
    """An exporter polling an embedded simulator on a free loopback port (scenario ``seed``)."""
    scenario = demo_scenario(seed)
    simulator = SimulatorServer.from_scenario(scenario)
    url = simulator.start()
    credential = scenario.credentials[0]
    provider = StaticProvider(Credentials(Secret(credential.secret_id), credential.secret_key),
                              "demo")
    config = parse_config(demo_config(scenario, url))
    exporter = DemoExporter(config, provider, shard=shard, demo=True)
    exporter.simulator = simulator
    log.info("demo mode: embedded TRTC simulator at %s with %d targets", url,
             len(config.targets))
    return exporter


def simulate(argv: list[str]) -> int:
    """``trtc-transcription-exporter simulate …``: the simulator's own command line."""
    return simulator_main(argv)
