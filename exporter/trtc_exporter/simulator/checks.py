"""Small validators for hand-written YAML: each appends ``path: problem`` and returns a value.

Shared by the scenario loader and the control endpoint so both word their errors the same way.
"""

from __future__ import annotations

from typing import Any

from trtc_exporter.durations import parse_seconds


def check_int(value: object, path: str, errors: list[str], low: int | None = 0) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        errors.append(f"{path}: must be an integer{bound}, got {value!r}")
        return None
    return value


def check_str(value: object, path: str, errors: list[str]) -> str | None:
    if not isinstance(value, str) or not value or value != value.strip():
        errors.append(f"{path}: must be a non-empty string without surrounding spaces, "
                      f"got {value!r}")  # fmt: skip
        return None
    return value


def check_seconds(value: object, path: str, errors: list[str], *, forever: bool) -> float:
    seconds, problem = parse_seconds(value, allow_forever=forever)
    if seconds is None:
        errors.append(f"{path}: {problem}")
        return 0.0
    return seconds


def check_mapping(value: object, path: str, errors: list[str]) -> dict[Any, Any]:
    if not isinstance(value, dict):
        errors.append(f"{path}: must be a mapping, got {type(value).__name__}")
        return {}
    return value


def check_list(value: object, path: str, errors: list[str]) -> list[Any]:
    if not isinstance(value, list):
        errors.append(f"{path}: must be a list, got {type(value).__name__}")
        return []
    return value
