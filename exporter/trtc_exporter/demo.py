"""``--demo``: the exporter against an embedded simulator, no account and no config file needed.

This is the one product module that imports the simulator (also for the ``simulate``
subcommand); tests/test_architecture.py keeps it that way.

The simulator runs in-process on a free loopback port with generated (fake) keys; the exporter
polls every demo task every two seconds, so every metric family is visible within seconds.

The simulator also sends its signed TRTC event callbacks to the exporter's callback listener (a
free loopback port unless ``--webhook.listen-address`` names one). Three tasks of a fourth app
are in no config: the exporter finds them through their start callbacks. One of them never
says a sentence (silent after ``DEMO_SILENCE_AFTER``), one fails to start, and one delivery
carries a forged signature, so every webhook panel has data.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import socket
import string
import tempfile
from dataclasses import replace
from typing import Any

from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.config.model import parse_config
from trtc_exporter.errors import counted
from trtc_exporter.secret import Secret
from trtc_exporter.simulator import SimulatorServer, demo_scenario, demo_targets
from trtc_exporter.simulator.callback_config import CallbackSpec
from trtc_exporter.simulator.cli import main as simulator_main
from trtc_exporter.simulator.demo import BUSY_APP, BUSY_APP_QUOTA
from trtc_exporter.simulator.scenario import Scenario, TaskSpec
from trtc_exporter.simulator.tasks import FOREVER, Api
from trtc_exporter.webhook.keys import KeyRing

log = logging.getLogger("trtc_exporter")
DEMO_POLL_INTERVAL = "2s"
DEMO_SILENCE_AFTER = "30s"
DEMO_SENTENCES_PER_MINUTE = 20.0  # the first sentences within seconds of start
CALLBACK_APP = 1400000004
"""The demo app no config names: its tasks are found by their start callbacks."""
SILENT_TASK, FAILED_TASK = "sim-hook-silent", "sim-hook-failed"


def callback_tasks() -> tuple[TaskSpec, ...]:
    """Tasks only callbacks reveal: a looping one, one InProgress and silent, one that fails."""
    loop = (("idle", 4.0), ("preparing", 4.0), ("in_progress", 50.0), ("stopped", 10.0))
    steady = (("idle", 0.0), ("preparing", 0.0), ("in_progress", FOREVER), ("stopped", 10.0))
    return (TaskSpec("sim-hook-loop", Api.AI, CALLBACK_APP, loop, start_offset=-6.0,
                     repeat_after=6.0),
            TaskSpec(SILENT_TASK, Api.AI, CALLBACK_APP, steady, start_offset=-600.0),
            TaskSpec(FAILED_TASK, Api.AI, CALLBACK_APP, steady, start_offset=-5.0))


def free_loopback_address() -> str:
    """``127.0.0.1:<port>`` of a port free right now (the listener binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def demo_config(scenario: Scenario, url: str, data_dir: str = "data") -> dict[str, Any]:
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
        "webhook": {"silence_after": DEMO_SILENCE_AFTER},
        # tasks found by callbacks are stored with the registrations: a throw-away place
        "registration": {"db_path": f"{data_dir}/registered-targets.db"},
    }


class DemoExporter(Exporter):
    """An Exporter that owns its simulator and stops it on shutdown."""

    simulator: SimulatorServer
    data_dir: str

    def start(self) -> None:
        """Start polling, then the simulator's callbacks (its listener is up by now)."""
        super().start()
        if self.simulator.api.callbacks is not None:
            self.simulator.api.callbacks.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the exporter, then the embedded simulator, and remove the demo's data directory."""
        super().stop(timeout)
        self.simulator.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def build_demo_exporter(shard: tuple[int, int] = (0, 1), seed: int = 7,
                        webhook_address: str | None = None) -> DemoExporter:
    """An exporter polling an embedded simulator on a free loopback port (scenario ``seed``),
    receiving its callbacks on ``webhook_address`` (default: a free loopback port)."""
    scenario = demo_scenario(seed)
    address = webhook_address or free_loopback_address()
    port = address.rpartition(":")[2]
    key = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    apps = sorted({task.sdk_app_id for task in scenario.tasks} | {CALLBACK_APP})
    spec = CallbackSpec(f"http://127.0.0.1:{port}/webhook/trtc",
                        keys={app: Secret(key) for app in apps},
                        sentences_per_minute=DEMO_SENTENCES_PER_MINUTE,
                        silent_tasks=frozenset({SILENT_TASK}),
                        failed_starts=frozenset({FAILED_TASK}), forged=True)
    simulator = SimulatorServer.from_scenario(replace(
        scenario, tasks=scenario.tasks + callback_tasks(), callbacks=spec))
    sender, simulator.api.callbacks = simulator.api.callbacks, None
    url = simulator.start()  # without its callbacks: DemoExporter.start() starts them
    simulator.api.callbacks = sender
    data_dir = tempfile.mkdtemp(prefix="trtc-exporter-demo-")
    config = parse_config(demo_config(scenario, url, data_dir))
    credential = scenario.credentials[0]
    provider = StaticProvider(Credentials(Secret(credential.secret_id), credential.secret_key),
                              "demo")
    exporter = DemoExporter(config, provider, shard=shard, demo=True,
                            keyring=KeyRing(default=Secret(key)))
    exporter.webhook_address = address
    exporter.simulator = simulator
    exporter.data_dir = data_dir
    log.info("demo mode: embedded TRTC simulator at %s with %s; its callbacks go to "
             "%s", url, counted(len(config.targets), "target"), spec.url)
    return exporter


def simulate(argv: list[str]) -> int:
    """``trtc-transcription-exporter simulate …``: the simulator's own command line."""
    return simulator_main(argv)
