"""Validation of fault specifications from a scenario file or the control endpoint.

The same parser serves ``faults:`` in YAML and ``POST /_sim/faults``, so a fault that loads from a
file can be sent at runtime unchanged, and both report errors as ``field.path: problem``.
"""

from __future__ import annotations

from typing import Any

from trtc_exporter.durations import parse_seconds
from trtc_exporter.errors import Errors
from trtc_exporter.simulator.faults import PARAMS, FaultKind, FaultSpec, ParamValue

_COMMON = ("kind", "probability", "duration", "after", "actions", "task_id")


def _check_param(rule: str, value: object) -> tuple[ParamValue | None, str | None]:
    """Validate one parameter value; returns (value, None) or (None, problem)."""
    if rule.startswith("choice:"):
        choices = rule.removeprefix("choice:").split(",")
        if str(value) not in choices:
            return None, f"must be one of {', '.join(choices)}, got {value!r}"
        return (int(str(value)) if choices[0].isdigit() else str(value)), None
    if rule == "seconds":
        return parse_seconds(value, allow_forever=False)
    if rule == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            return None, f"must be a number >= 0, got {value!r}"
        return float(value), None
    if rule in ("positive_int", "non_negative_int"):
        low = 1 if rule == "positive_int" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            return None, f"must be an integer >= {low}, got {value!r}"
        return value, None
    if rule == "strings":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            return None, f"must be a list of non-empty strings, got {value!r}"
        return tuple(value), None
    if not isinstance(value, str) or not value:
        return None, f"must be a non-empty string, got {value!r}"
    if rule == "auth_code" and not value.startswith("AuthFailure"):
        return None, f"must be an AuthFailure.* code, got {value!r}"
    return value, None


def parse_fault(
    data: object, path: str, known_actions: frozenset[str], task_id: str | None = None
) -> tuple[FaultSpec | None, list[str]]:
    """Build a FaultSpec from YAML/JSON data (a mapping with ``kind`` and that kind's parameters,
    see ``faults.PARAMS``); ``task_id`` given means the fault sits in that task's own ``faults:``.

    Returns ``(spec, [])``, or ``(None, lines)`` with one ``path.field: problem`` line per
    mistake (collected in an :class:`~trtc_exporter.errors.Errors`).
    """
    if not isinstance(data, dict):
        return None, [f"{path}: must be a mapping, got {type(data).__name__}"]
    try:
        kind = FaultKind(str(data.get("kind")))
    except ValueError:
        kinds = ", ".join(k.value for k in FaultKind)
        return None, [f"{path}.kind: must be one of {kinds}, got {data.get('kind')!r}"]
    errors = Errors()
    errors.extend(
        f"{path}.{key}: unknown key for a {kind.value} fault"
        for key in data
        if key not in _COMMON and key not in PARAMS[kind]
    )
    if task_id is not None and "task_id" in data:
        errors.add(f"{path}.task_id", "not allowed in a task's own faults")
    params = _parse_params(kind, data, path, errors)
    common = _parse_common(data, path, known_actions, errors)
    if task_id is not None:
        common["task_id"] = task_id
    if errors.count:
        return None, errors.report()
    return FaultSpec(kind=kind, params=params, **common), []


def _parse_params(
    kind: FaultKind, data: dict[str, object], path: str, errors: Errors
) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for name, (rule, default) in PARAMS[kind].items():
        if name not in data:
            if default is None:
                errors.add(f"{path}.{name}", f"required for a {kind.value} fault")
            else:
                params[name] = default
            continue
        value, problem = _check_param(rule, data[name])
        if problem is not None or value is None:
            errors.add(f"{path}.{name}", str(problem))
        else:
            params[name] = value
    return params


def _parse_common(
    data: dict[str, object], path: str, known_actions: frozenset[str], errors: Errors
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    p = data.get("probability", 1.0)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        errors.add(f"{path}.probability", f"must be a number in (0, 1], got {p!r}")
    else:
        out["probability"] = float(p)
    for name, allow_forever in (("duration", True), ("after", False)):
        if data.get(name) is not None:
            seconds, problem = parse_seconds(data[name], allow_forever=allow_forever)
            if problem is not None:
                errors.add(f"{path}.{name}", str(problem))
            else:
                out[name] = seconds
    actions = data.get("actions")
    if actions is not None:
        if not isinstance(actions, list) or not all(a in known_actions for a in actions):
            errors.add(f"{path}.actions",
                       f"must be a list of {', '.join(sorted(known_actions))}, got {actions!r}")
        else:
            out["actions"] = frozenset(actions)
    tid = data.get("task_id")
    if tid is not None:
        if not isinstance(tid, str) or not tid:
            errors.add(f"{path}.task_id", f"must be a non-empty string, got {tid!r}")
        else:
            out["task_id"] = tid
    return out
