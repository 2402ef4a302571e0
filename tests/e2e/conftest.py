"""The session-wide e2e stack, started once and stopped after the last e2e test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.e2e.stack import ALERTMANAGER, EXPORTER, PROMETHEUS, Stack, require
from trtc_exporter.simulator.demo import MISSING_TASK_ID

# The task the alert tests watch. The demo has no task that stays stopped: its looping tasks are
# InProgress again about 30 s after they stop, less than TrtcTaskStoppedUnexpectedly's `for: 1m`;
# and its task stuck in Preparing fires TrtcTaskStuckPreparing only ~6 min after the exporter
# starts (status_change_time is the exporter's first observation: 300 s threshold, then 1m).
# So the test gives the demo's never-existing target a task in the simulator, through the
# simulator's control API: it runs for a few polls, then stops for good while still monitored.
STOPPING_TASK = {
    "task_id": MISSING_TASK_ID,
    "sdk_app_id": 1400000001,
    "phases": {"idle": 0, "preparing": 0, "in_progress": 12, "stopped": "forever"},
}


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Exporter (--demo), Alertmanager, Prometheus and a webhook receiver on free loopback ports."""
    require(EXPORTER, PROMETHEUS, ALERTMANAGER)
    with ExitStack() as resources:
        running = Stack(tmp_path_factory.mktemp("e2e"), resources)
        running.create_task(STOPPING_TASK)
        yield running
