"""Field-path error collection shared by every parser of user input (config, target files, API).

Parsers report every problem at once, each as ``path: problem``, so an operator fixes a config in
one round instead of one error per restart.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from trtc_exporter.durations import DurationError, parse_duration

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class ConfigError(Exception):
    """Invalid user input; ``lines`` holds one ``path: problem`` line per mistake."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def type_name(value: object) -> str:
    """YAML-ish name of a value's type, for messages like ``must be an integer, got string``."""
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping"}.get(type(value), type(value).__name__)


class Errors:
    """Collects ``path: problem`` lines; ``raise_if_any`` turns them into one ConfigError."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.lines.append(f"{path}: {problem}")

    def raise_if_any(self) -> None:
        if self.lines:
            raise ConfigError(self.lines)

    def mapping(self, raw: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        """Return raw as a mapping (empty on error), reporting unknown keys."""
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.add(path or "config", f"must be a mapping, got {type_name(raw)}")
            return {}
        for key in raw:
            if key not in allowed:
                where = f"{path}.{key}" if path else str(key)
                self.add(where, "unknown field")
        return raw

    def string(self, raw: Mapping[str, Any], key: str, path: str, default: str | None) -> str | None:
        value = raw.get(key, default)
        if value is None or isinstance(value, str):
            return value
        self.add(f"{path}{key}", f"must be a string, got {type_name(value)}")
        return default

    def integer(self, raw: Mapping[str, Any], key: str, path: str, default: int | None,
                minimum: int | None = None) -> int | None:
        value = raw.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(f"{path}{key}", f"must be an integer, got {type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.add(f"{path}{key}", f"must be >= {minimum}, got {value}")
            return default
        return value

    def number(self, raw: Mapping[str, Any], key: str, path: str, default: float,
               low: float = 0.0, high: float | None = None, low_inclusive: bool = False) -> float:
        """A number in (low, high] (or [low, high] with low_inclusive)."""
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(f"{path}{key}", f"must be a number, got {type_name(value)}")
            return default
        too_low = value < low if low_inclusive else value <= low
        if too_low:
            self.add(f"{path}{key}", f"must be {'>=' if low_inclusive else '>'} {low:g}, got {value:g}")
            return default
        if high is not None and value > high:
            self.add(f"{path}{key}", f"must be <= {high:g}, got {value:g}")
            return default
        return float(value)

    def boolean(self, raw: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = raw.get(key, default)
        if not isinstance(value, bool):
            self.add(f"{path}{key}", f"must be true or false, got {type_name(value)}")
            return default
        return value

    def duration(self, raw: Mapping[str, Any], key: str, path: str, default: float,
                 positive: bool = True) -> float:
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            self.add(f"{path}{key}", f'must be a duration string like "15s", got {type_name(value)}')
            return default
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            self.add(f"{path}{key}", str(exc))
            return default
        if positive and seconds <= 0:
            self.add(f"{path}{key}", f'must be > 0, got "{value}"')
            return default
        return seconds

    def label_name(self, name: object, path: str, reserved: frozenset[str]) -> bool:
        if not isinstance(name, str) or not LABEL_NAME.match(name) or name.startswith("__"):
            self.add(path, f"invalid label name {name!r}")
            return False
        if name in reserved:
            self.add(path, f"label name {name!r} is reserved by the exporter")
            return False
        return True
