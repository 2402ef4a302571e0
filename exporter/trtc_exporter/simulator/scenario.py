"""Scenario files: credentials, limits, tasks and faults of one simulated account, from YAML.

Parsing is explicit and strict, like the exporter's own config: unknown keys are refused and every
problem is reported as ``field.path: problem`` in one ``ScenarioError``, so a broken scenario is
fixed in one edit rather than one error per run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtc_exporter.errors import Errors
from trtc_exporter.secret import Secret
from trtc_exporter.simulator.actions import ACTIONS
from trtc_exporter.simulator.auth import Credential
from trtc_exporter.simulator.callback_config import CallbackSpec, parse_callbacks
from trtc_exporter.simulator.checks import (
    check_int,
    check_list,
    check_mapping,
    check_seconds,
    check_str,
)
from trtc_exporter.simulator.faultparse import parse_fault
from trtc_exporter.simulator.faults import FaultSpec
from trtc_exporter.simulator.tasks import AI_MAX_LIFETIME, FOREVER, PHASES, REGIONS, Api
from trtc_exporter.yamlload import YamlError, load_yaml

Phases = tuple[tuple[str, float], ...]
KNOWN_ACTIONS = frozenset(ACTIONS)

DEFAULT_PHASES: dict[Api, Phases] = {
    Api.AI: (("idle", 1.0), ("preparing", 2.0), ("in_progress", AI_MAX_LIFETIME), ("stopped", 5.0)),
    Api.CLOUD: (("idle", 1.0), ("in_progress", FOREVER), ("exited", 5.0)),
}
"""Phase durations (s) for tasks created through the API and for scenario tasks that omit some."""


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``errors`` holds one ``path: problem`` line per mistake."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A task as declared in a scenario; ``start_offset`` is relative to the simulator's start."""

    task_id: str
    api: Api
    sdk_app_id: int
    phases: Phases
    region: str = "ap-guangzhou"
    start_offset: float = 0.0
    session_id: str | None = None
    repeat_after: float | None = None
    faults: tuple[FaultSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Scenario:
    """Everything a simulator starts from."""

    credentials: tuple[Credential, ...]
    tasks: tuple[TaskSpec, ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    rate_limit: int = 20
    rate_limits: Mapping[str, int] = field(default_factory=dict)
    count_throttled: bool = False
    limit_message: str = "numbers"
    quotas: Mapping[int, int] = field(default_factory=dict)
    created_phases: Mapping[Api, Phases] = field(default_factory=lambda: dict(DEFAULT_PHASES))
    seed: int = 0
    max_skew: float = 300.0
    cloud_start_time_ms: bool = False
    callbacks: CallbackSpec | None = None


LIMIT_MESSAGES = ("numbers", "plain")
"""RequestLimitExceeded wording: the real API's (with counts), or one that states no numbers."""

_TOP = {"seed", "credentials", "rate_limit", "rate_limits", "count_throttled", "limit_message",
        "max_skew", "cloud_start_time_ms", "apps", "defaults", "tasks", "faults",
        "callbacks"}  # fmt: skip
_TASK = {"task_id", "api", "sdk_app_id", "session_id", "region", "start_offset", "phases",
         "repeat_after", "faults"}  # fmt: skip


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML scenario file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = load_yaml(text)
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    except YamlError as exc:
        raise ScenarioError([f"{path}: {exc}"]) from exc
    return parse_scenario(data)


def parse_scenario(data: object) -> Scenario:
    """Validate decoded YAML/JSON; raises ScenarioError listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError([f"scenario: must be a mapping, got {type(data).__name__}"])
    errors = Errors()
    errors.extend(f"{key}: unknown key" for key in data if key not in _TOP)
    kw: dict[str, Any] = {}
    kw["credentials"] = _credentials(data.get("credentials"), errors)
    kw["created_phases"] = _defaults(data.get("defaults", {}), errors)
    for name, low in (("rate_limit", 0), ("seed", None)):
        if name in data and check_int(data[name], name, errors, low) is not None:
            kw[name] = data[name]
    for name in ("count_throttled", "cloud_start_time_ms"):
        if name in data:
            if isinstance(data[name], bool):
                kw[name] = data[name]
            else:
                errors.add(name, f"must be true or false, got {data[name]!r}")
    if "limit_message" in data:
        if data["limit_message"] in LIMIT_MESSAGES:
            kw["limit_message"] = data["limit_message"]
        else:
            errors.add("limit_message", f"must be numbers or plain, got {data['limit_message']!r}")
    if "max_skew" in data:
        kw["max_skew"] = check_seconds(data["max_skew"], "max_skew", errors, forever=False)
    kw["rate_limits"] = _rate_limits(data.get("rate_limits", {}), errors)
    kw["quotas"] = _apps(data.get("apps", {}), errors)
    kw["tasks"] = _tasks(data.get("tasks", []), kw["created_phases"], errors)
    kw["faults"] = _faults(data.get("faults", []), "faults", None, errors)
    if data.get("callbacks") is not None:
        kw["callbacks"] = parse_callbacks(data["callbacks"], "callbacks", errors)
    if errors.count:
        raise ScenarioError(errors.report())
    return Scenario(**kw)


def _credentials(value: object, errors: Errors) -> tuple[Credential, ...]:
    if value is None:
        errors.append("credentials: required (a list of {secret_id, secret_key[, token]})")
        return ()
    out: dict[str, Credential] = {}
    items = check_list(value, "credentials", errors)
    if isinstance(value, list) and not items:
        errors.append("credentials: must list at least one key pair")
    for i, item in enumerate(items):
        path = f"credentials[{i}]"
        entry = check_mapping(item, path, errors)
        errors.extend(f"{path}.{k}: unknown key" for k in entry
                      if k not in ("secret_id", "secret_key", "token"))  # fmt: skip
        sid = check_str(entry.get("secret_id"), f"{path}.secret_id", errors)
        key = check_str(entry.get("secret_key"), f"{path}.secret_key", errors)
        token = entry.get("token")
        if token is not None:
            token = check_str(token, f"{path}.token", errors)
        if sid in out:
            errors.add(f"{path}.secret_id", "duplicate of an earlier entry")
        elif sid is not None and key is not None:
            out[sid] = Credential(sid, Secret(key), Secret(token) if token else None)
    return tuple(out.values())


def _phases(value: object, api: Api, base: Phases, path: str, errors: Errors) -> Phases:
    given = check_mapping(value, path, errors)
    names = PHASES[api]
    for key in given:
        if key not in names:
            errors.add(f"{path}.{key}", f"not a phase of {api.value} ({', '.join(names)})")
    defaults = dict(base)
    return tuple(
        (n, check_seconds(given[n], f"{path}.{n}", errors, forever=True))
        if n in given
        else (n, defaults[n])
        for n in names
    )


def _defaults(value: object, errors: Errors) -> dict[Api, Phases]:
    given = check_mapping(value, "defaults", errors)
    out = dict(DEFAULT_PHASES)
    for key, phases in given.items():
        if key not in {a.value for a in Api}:
            errors.add(f"defaults.{key}", "unknown key (ai_transcription, cloud_transcription)")
            continue
        api = Api(key)
        out[api] = _phases(phases, api, DEFAULT_PHASES[api], f"defaults.{key}", errors)
    return out


def _rate_limits(value: object, errors: Errors) -> dict[str, int]:
    out = {}
    for action, limit in check_mapping(value, "rate_limits", errors).items():
        if action not in KNOWN_ACTIONS:
            errors.add(f"rate_limits.{action}", "unknown action")
        elif check_int(limit, f"rate_limits.{action}", errors) is not None:
            out[action] = limit
    return out


def _apps(value: object, errors: Errors) -> dict[int, int]:
    out = {}
    for app, settings in check_mapping(value, "apps", errors).items():
        path = f"apps.{app}"
        if check_int(app, path, errors, 1) is None:
            continue
        entry = check_mapping(settings, path, errors)
        errors.extend(f"{path}.{k}: unknown key" for k in entry if k != "max_concurrent_tasks")
        if "max_concurrent_tasks" in entry:
            limit = check_int(entry["max_concurrent_tasks"], f"{path}.max_concurrent_tasks",
                              errors, 1)  # fmt: skip
            if limit is not None:
                out[app] = limit
    return out


def _faults(
    value: object, path: str, task_id: str | None, errors: Errors
) -> tuple[FaultSpec, ...]:
    out = []
    for i, item in enumerate(check_list(value, path, errors)):
        spec, problems = parse_fault(item, f"{path}[{i}]", KNOWN_ACTIONS, task_id)
        errors.extend(problems)
        if spec is not None:
            out.append(spec)
    return tuple(out)


def _tasks(
    value: object, defaults: Mapping[Api, Phases], errors: Errors
) -> tuple[TaskSpec, ...]:
    out: list[TaskSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(check_list(value, "tasks", errors)):
        spec = parse_task(item, f"tasks[{i}]", defaults, errors)
        if spec is None:
            continue
        if spec.task_id in seen:
            errors.add(f"tasks[{i}].task_id", f"duplicate of tasks[{seen[spec.task_id]}]")
            continue
        seen[spec.task_id] = i
        out.append(spec)
    return tuple(out)


def parse_task(
    item: object, path: str, defaults: Mapping[Api, Phases], errors: Errors
) -> TaskSpec | None:
    """One task entry (also used by ``POST /_sim/tasks``), or None with each problem recorded in
    ``errors`` as ``path.field: problem``."""
    before = errors.count
    entry = check_mapping(item, path, errors)
    errors.extend(f"{path}.{k}: unknown key" for k in entry if k not in _TASK)
    task_id = check_str(entry.get("task_id"), f"{path}.task_id", errors)
    try:
        api = Api(entry.get("api", Api.AI.value))
    except ValueError:
        errors.add(f"{path}.api", f"must be ai_transcription or cloud_transcription, "
                                  f"got {entry.get('api')!r}")  # fmt: skip
        api = Api.AI
    sdk = check_int(entry.get("sdk_app_id"), f"{path}.sdk_app_id", errors, 1)
    region = entry.get("region", "ap-guangzhou")
    if region not in REGIONS[api]:
        errors.add(f"{path}.region", f"{api.value} supports {', '.join(REGIONS[api])}, "
                                     f"got {region!r}")  # fmt: skip
    session = entry.get("session_id")
    if session is not None:
        session = check_str(session, f"{path}.session_id", errors)
        if api is Api.CLOUD:
            errors.add(f"{path}.session_id", "only ai_transcription tasks have a SessionId")
    offset = entry.get("start_offset", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, (int, float)) or math.isnan(offset):
        errors.add(f"{path}.start_offset", f"must be a number of seconds, got {offset!r}")
        offset = 0.0
    phases = _phases(entry.get("phases", {}), api, defaults[api], f"{path}.phases", errors)
    repeat = _repeat(entry.get("repeat_after"), phases, f"{path}.repeat_after", errors)
    faults = _faults(entry.get("faults", []), f"{path}.faults", task_id, errors)
    if errors.count > before or task_id is None or sdk is None:
        return None
    return TaskSpec(task_id, api, sdk, phases, region, float(offset), session, repeat, faults)


def _repeat(value: object, phases: Phases, path: str, errors: Errors) -> float | None:
    if value is None:
        return None
    gap = check_seconds(value, path, errors, forever=False)
    endless = [name for name, d in phases if math.isinf(d)]
    if endless:
        errors.add(path, f"a repeating task needs finite phases, {endless[0]} is forever")
    elif gap + sum(d for _, d in phases) <= 0:
        errors.add(path, "a repeating task needs a cycle longer than 0 s")
    return gap
