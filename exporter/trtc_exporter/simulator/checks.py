"""Small validators for hand-written YAML: each records ``path: problem`` and returns a value.

Shared by the scenario loader and the control endpoint so both word their errors the same way.
Problems go into the exporter's one error-collection type, :class:`trtc_exporter.errors.Errors`;
the wording here is the simulator's own (``got 'x'`` as Python's ``repr``), pinned by
``tests/fixtures/simulator/invalid-*.yml``.
"""

from __future__ import annotations

from typing import Any

from trtc_exporter.durations import parse_seconds
from trtc_exporter.errors import Errors


def check_int(value: object, path: str, errors: Errors, low: int | None = 0) -> int | None:
    """``value`` if it is an integer (not a boolean) ``>= low`` (any integer when ``low`` is
    None), else None with ``path: must be an integer >= low, got …`` recorded."""
    if isinstance(value, bool) or not isinstance(value, int) or (low is not None and value < low):
        bound = f" >= {low}" if low is not None else ""
        errors.add(path, f"must be an integer{bound}, got {value!r}")
        return None
    return value


def check_str(value: object, path: str, errors: Errors) -> str | None:
    """``value`` if it is a non-empty string without surrounding spaces, else None (recorded)."""
    if not isinstance(value, str) or not value or value != value.strip():
        errors.add(path, f"must be a non-empty string without surrounding spaces, got {value!r}")
        return None
    return value


def check_seconds(value: object, path: str, errors: Errors, *, forever: bool) -> float:
    """Seconds from a number or a duration string (``forever`` allows ``"forever"`` = inf);
    0.0 with the problem recorded when invalid (see ``durations.parse_seconds``)."""
    seconds, problem = parse_seconds(value, allow_forever=forever)
    if seconds is None:
        errors.add(path, str(problem))
        return 0.0
    return seconds


def check_mapping(value: object, path: str, errors: Errors) -> dict[Any, Any]:
    """``value`` if it is a mapping, else ``{}`` with ``must be a mapping`` recorded."""
    if not isinstance(value, dict):
        errors.add(path, f"must be a mapping, got {type(value).__name__}")
        return {}
    return value


def check_list(value: object, path: str, errors: Errors) -> list[Any]:
    """``value`` if it is a list, else ``[]`` with ``must be a list`` recorded."""
    if not isinstance(value, list):
        errors.add(path, f"must be a list, got {type(value).__name__}")
        return []
    return value
