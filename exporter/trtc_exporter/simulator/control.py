"""JSON control endpoints under ``/_sim/``: the simulator's truth, stats and runtime knobs.

The prefix cannot clash with the API, whose only path is ``/``. Endpoints:

- ``GET /_sim/stats`` — counters and the sliding-window peaks (see ``stats.py``).
- ``POST /_sim/reset_stats`` — start a new measurement.
- ``GET /_sim/tasks`` — every task's current status (``NotFound`` before start or once gone).
- ``POST /_sim/tasks`` — create a task: one scenario ``tasks[]`` entry, offset from now.
- ``GET|POST|DELETE /_sim/faults`` — list; add (one fault, or ``{"faults": [...],
  "clear": bool}``); remove all.
- ``GET|POST /_sim/rate_limit`` — ``{"limit": N, "action"?: name, "duration"?: seconds}``; with a
  duration the limit drops temporarily (a ``rate_limit_drop`` fault), else it is set for good.
- ``GET /_sim/callbacks`` — the callback sender's counters (``{"enabled": false}`` without one).
- ``GET|POST /_sim/throttling`` — ``{"count_throttled"?: bool, "limit_message"?: "numbers" |
  "plain"}``: whether refused requests fill the window, and whether RequestLimitExceeded
  messages state the counts (the scenario keys of the same names, switched at runtime).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trtc_exporter.durations import parse_seconds
from trtc_exporter.errors import Errors
from trtc_exporter.simulator.api import SimulatorAPI
from trtc_exporter.simulator.checks import check_int
from trtc_exporter.simulator.faultparse import parse_fault
from trtc_exporter.simulator.faults import FaultKind, FaultSpec
from trtc_exporter.simulator.scenario import KNOWN_ACTIONS, LIMIT_MESSAGES, parse_task

PREFIX = "/_sim/"


@dataclass(frozen=True, slots=True)
class ControlResult:
    """HTTP status and JSON document of a control request."""

    status: int
    payload: dict[str, Any]


class _BadRequest(Exception):
    def __init__(self, errors: list[str], status: int = 400) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.status = status


def handle_control(api: SimulatorAPI, method: str, path: str, body: bytes) -> ControlResult:
    """Route one control request; errors come back as ``{"errors": [...]}`` with 4xx."""
    route = _ROUTES.get((method, path.split("?", 1)[0]))
    if route is None:
        known = sorted({p for _, p in _ROUTES})
        return ControlResult(404, {"errors": [f"no such endpoint {method} {path}"], "known": known})
    try:
        return ControlResult(200, route(api, _json(body) if method == "POST" else None))
    except _BadRequest as exc:
        return ControlResult(exc.status, {"errors": exc.errors})


def _json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except ValueError as exc:
        raise _BadRequest([f"body: not valid JSON: {exc}"]) from exc


def _stats(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    return api.stats.to_json(api.limiter.admitted_peaks(), api.limits(), api.limiter.rejected())


def _reset_stats(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    api.stats.reset()
    api.limiter.reset_peaks()
    return {"ok": True}


def _tasks(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    now = api.clock.time()
    tasks = [
        {
            "task_id": task.task_id,
            "api": task.api.value,
            "sdk_app_id": task.sdk_app_id,
            "session_id": task.session_id,
            "region": task.region,
            "status": view.status if view is not None else "NotFound",
            "start_time": view.start_time if view is not None else None,
            "exists": view is not None,
            "repeating": task.repeat_after is not None,
        }
        for task, view in api.store.snapshot(now)
    ]
    return {"now": now, "tasks": tasks}


def _create_task(api: SimulatorAPI, data: Any) -> dict[str, Any]:
    errors = Errors()
    spec = parse_task(data, "task", api.scenario.created_phases, errors)
    if spec is None:
        raise _BadRequest(errors.report())
    try:
        api.add_task(spec)
    except ValueError as exc:
        raise _BadRequest([f"task.task_id: {exc}"], status=409) from exc
    return {"task_id": spec.task_id, **_tasks(api, None)}


def _faults(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    now = api.clock.time()
    return {
        "now": now,
        "faults": [
            {**f.spec.to_json(), "activated_at": f.activated_at, "live": f.live(now)}
            for f in api.faults.active(now)
        ],
    }


def _add_faults(api: SimulatorAPI, data: Any) -> dict[str, Any]:
    if isinstance(data, dict) and "kind" not in data:
        unknown = [k for k in data if k not in ("faults", "clear")]
        if unknown:
            raise _BadRequest([f"{k}: unknown key (faults, clear)" for k in unknown])
        items, clear = data.get("faults", []), data.get("clear", False)
    else:
        items, clear = [data], False
    if not isinstance(items, list):
        raise _BadRequest(["faults: must be a list"])
    specs, errors = [], Errors()
    for i, item in enumerate(items):
        spec, problems = parse_fault(item, f"faults[{i}]", KNOWN_ACTIONS)
        errors.extend(problems)
        if spec is not None:
            specs.append(spec)
    if errors.count:
        raise _BadRequest(errors.report())
    if clear is True:
        api.faults.clear()
    for spec in specs:
        api.add_fault(spec)
    return _faults(api, None)


def _clear_faults(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    api.faults.clear()
    return _faults(api, None)


def _rate_limit(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    return {"rate_limits": api.limits()}


def _set_rate_limit(api: SimulatorAPI, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _BadRequest(["body: must be a JSON object"])
    errors = Errors()
    errors.extend(f"{k}: unknown key (limit, action, duration)" for k in data
                  if k not in ("limit", "action", "duration"))  # fmt: skip
    action = data.get("action")
    limit = check_int(data.get("limit"), "limit", errors)
    if action is not None and action not in KNOWN_ACTIONS:
        errors.add("action", f"unknown action {action!r}")
    duration, problem = parse_seconds(data.get("duration", "forever"), allow_forever=True)
    if problem is not None:
        errors.add("duration", problem)
    if errors.count or duration is None or limit is None:
        raise _BadRequest(errors.report())
    if math.isinf(duration):
        api.set_rate_limit(limit, action)
    else:
        actions = frozenset([action]) if action else None
        api.add_fault(FaultSpec(FaultKind.RATE_LIMIT_DROP, duration=duration, actions=actions,
                                params={"limit": limit}))  # fmt: skip
    return _rate_limit(api, None)


def _throttling(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    return {
        "count_throttled": api.limiter.count_throttled,
        "limit_message": "plain" if api.plain_limit_message else "numbers",
    }


def _set_throttling(api: SimulatorAPI, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise _BadRequest(["body: must be a JSON object"])
    errors = Errors()
    errors.extend(f"{k}: unknown key (count_throttled, limit_message)" for k in data
                  if k not in ("count_throttled", "limit_message"))  # fmt: skip
    counted, message = data.get("count_throttled"), data.get("limit_message")
    if counted is not None and not isinstance(counted, bool):
        errors.add("count_throttled", f"must be true or false, got {counted!r}")
    if message is not None and message not in LIMIT_MESSAGES:
        errors.add("limit_message", f"must be numbers or plain, got {message!r}")
    if errors.count:
        raise _BadRequest(errors.report())
    if counted is not None:
        api.limiter.set_count_throttled(counted)
    if message is not None:
        api.plain_limit_message = message == "plain"
    return _throttling(api, None)


def _callbacks(api: SimulatorAPI, _: Any) -> dict[str, Any]:
    if api.callbacks is None:
        return {"enabled": False}
    return {"enabled": True, "url": api.callbacks.spec.url, **api.callbacks.stats()}


_ROUTES: dict[tuple[str, str], Callable[[SimulatorAPI, Any], dict[str, Any]]] = {
    ("GET", "/_sim/stats"): _stats,
    ("POST", "/_sim/reset_stats"): _reset_stats,
    ("GET", "/_sim/tasks"): _tasks,
    ("POST", "/_sim/tasks"): _create_task,
    ("GET", "/_sim/faults"): _faults,
    ("POST", "/_sim/faults"): _add_faults,
    ("DELETE", "/_sim/faults"): _clear_faults,
    ("GET", "/_sim/rate_limit"): _rate_limit,
    ("POST", "/_sim/rate_limit"): _set_rate_limit,
    ("GET", "/_sim/callbacks"): _callbacks,
    ("GET", "/_sim/throttling"): _throttling,
    ("POST", "/_sim/throttling"): _set_throttling,
}
