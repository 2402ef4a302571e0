"""The demo account: a handful of tasks that keep moving, for ``--demo`` and ``simulate``.

Within five seconds of start every 1.0 status is on screen (the looping tasks start at different
points of their cycle), transitions follow every few tens of seconds, and the odd cases an operator
should recognise are there: a task id that does not exist, a task running for hours, one stuck in
Preparing, an app busy with many concurrent tasks, and 2.0 (cloud transcription) tasks.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from random import Random
from typing import Any

from trtc_exporter.secret import Secret
from trtc_exporter.simulator.auth import Credential
from trtc_exporter.simulator.scenario import Phases, Scenario, TaskSpec
from trtc_exporter.simulator.tasks import FOREVER, Api

MISSING_TASK_ID = "sim-task-does-not-exist"
"""A target the demo polls but the simulator never knew: shows NotFound from the first poll."""

BUSY_APP = 1400000003
BUSY_APP_QUOTA = 10

_AI_LOOP: Phases = (("idle", 6.0), ("preparing", 6.0), ("in_progress", 40.0), ("stopped", 10.0))
_AI_LOOP_GAP = 8.0  # gone (TaskNotExist) between cycles
_CLOUD_LOOP: Phases = (("idle", 5.0), ("in_progress", 45.0), ("exited", 10.0))
_STEADY: Phases = (("idle", 0.0), ("preparing", 0.0), ("in_progress", FOREVER), ("stopped", 10.0))
_STUCK: Phases = (
    ("idle", 1.0),
    ("preparing", FOREVER),
    ("in_progress", FOREVER),
    ("stopped", 10.0),
)
_CLOUD_STEADY: Phases = (("idle", 0.0), ("in_progress", FOREVER), ("exited", 10.0))

IdMaker = Callable[[str], str]


def _ai(task_id: str, app: int, offset: float, **kw: Any) -> TaskSpec:
    """A looping 1.0 task started ``offset`` seconds into its cycle."""
    return TaskSpec(
        task_id, Api.AI, app, _AI_LOOP, start_offset=-offset, repeat_after=_AI_LOOP_GAP, **kw
    )


def _cloud(task_id: str, phases: Phases, offset: float, **kw: Any) -> TaskSpec:
    """A 2.0 task of the demo's 2.0 app, started ``offset`` seconds ago."""
    return TaskSpec(task_id, Api.CLOUD, 1400000002, phases, start_offset=-offset, **kw)


def _ai_tasks(tid: IdMaker) -> list[TaskSpec]:
    """Looping tasks at different points of their cycle, so every status shows at once."""
    return [
        _ai(tid("sim-idle-"), 1400000001, 2.0),  # Idle at start
        _ai(tid("sim-prep-"), 1400000001, 8.0),  # Preparing at start
        _ai(tid("sim-live-"), 1400000001, 20.0),  # InProgress at start
        _ai(tid("sim-stop-"), 1400000001, 55.0),  # Stopped at start
        _ai(tid("sim-sg-"), 1400000001, 30.0, region="ap-singapore"),
        _ai(tid("sim-sess-"), 1400000001, 4.0, session_id="room-1-subtitles"),
        _ai(tid("sim-sess-"), 1400000001, 50.0, session_id="room-2-subtitles", region="ap-tokyo"),
    ]


def _special_tasks(tid: IdMaker) -> list[TaskSpec]:
    """Hours-long InProgress, stuck in Preparing, a busy app, and 2.0 tasks."""
    tasks = [
        TaskSpec(tid("sim-long-"), Api.AI, 1400000001, _STEADY, start_offset=-3 * 3600.0),
        TaskSpec(tid("sim-stuck-"), Api.AI, 1400000001, _STUCK, start_offset=-900.0),
    ]
    tasks += [
        TaskSpec(tid(f"sim-busy{i}-"), Api.AI, BUSY_APP, _STEADY, start_offset=-60.0 * (i + 1))
        for i in range(8)
    ]
    return tasks + [
        _cloud(tid("sim-cloud-"), _CLOUD_LOOP, 10.0, repeat_after=6.0),
        _cloud(tid("sim-cloud-"), _CLOUD_LOOP, 52.0, repeat_after=6.0, region="ap-hongkong"),
        _cloud(tid("sim-cloud-long-"), _CLOUD_STEADY, 7200.0, region="ap-singapore"),
    ]


def _demo_tasks(rng: Random) -> list[TaskSpec]:
    def tid(prefix: str) -> str:
        return prefix + "".join(rng.choices(string.ascii_lowercase + string.digits, k=12))

    return _ai_tasks(tid) + _special_tasks(tid)


def demo_scenario(seed: int = 7) -> Scenario:
    """The demo account; the same seed gives the same credentials and task ids."""
    rng = Random(seed)
    alnum = string.ascii_letters + string.digits
    credential = Credential(
        secret_id="AKIDsim" + "".join(rng.choices(alnum, k=29)),
        secret_key=Secret("".join(rng.choices(alnum, k=32))),
    )
    return Scenario(
        credentials=(credential,),
        tasks=tuple(_demo_tasks(rng)),
        quotas={BUSY_APP: BUSY_APP_QUOTA},
        seed=seed,
    )


def demo_targets(scenario: Scenario) -> list[dict[str, Any]]:
    """Exporter ``targets`` entries (design.md schema) for every task, plus one unknown task."""
    targets: list[dict[str, Any]] = []
    for task in scenario.tasks:
        if task.api is Api.CLOUD:
            targets.append({"task_id": task.task_id, "sdk_app_id": task.sdk_app_id,
                            "api": Api.CLOUD.value, "region": task.region})  # fmt: skip
        elif task.session_id is not None:
            targets.append({"sdk_app_id": task.sdk_app_id, "session_id": task.session_id,
                            "region": task.region})  # fmt: skip
        else:
            targets.append({"task_id": task.task_id, "region": task.region})
    targets.append({"task_id": MISSING_TASK_ID, "region": "ap-guangzhou"})
    return targets
