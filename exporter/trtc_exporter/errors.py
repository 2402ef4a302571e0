"""Field-path error collection shared by every parser of user input (config, target files, API).

Parsers report every problem at once, each as ``path: problem``, so an operator fixes a config in
one round instead of one error per restart. A parser never raises anything but ConfigError, however
odd its input (NaN, integers with thousands of digits, lists where a mapping belongs, non-string
keys): :func:`show` and :func:`key_text` render any value safely and briefly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from trtc_exporter.durations import DurationError, parse_duration

LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SHOW_MAX = 60
MAX_LINES = 100
"""Problems kept in full; past this a file of 100 000 bad entries costs a count, not memory."""


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


def show(value: object) -> str:
    """A short, always-printable rendering of a user value for an error message.

    Huge integers (whose ``str`` Python refuses beyond 4300 digits) and long strings are
    abbreviated; containers are named by type, never dumped.
    """
    if isinstance(value, bool) or value is None:
        return type_name(value) if value is None else str(value).lower()
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else "a huge integer"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= _SHOW_MAX else text[: _SHOW_MAX - 4] + "...'"
    return f"a {type_name(value)}"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``count`` with its noun in the right number, for logs and pages: ``1 target``,
    ``2 targets``, ``0 targets`` (``plural`` when adding "s" is wrong: ``entries``)."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def key_text(key: object) -> str:
    """A mapping key as written in a field path: ``apps.1400123456``, ``labels.team``."""
    if isinstance(key, str) and key.isprintable():
        return key if len(key) <= _SHOW_MAX else key[: _SHOW_MAX - 3] + "..."
    return show(key)


def is_text(value: str) -> bool:
    """True when ``value`` encodes as UTF-8: JSON's ``"\\ud800"`` decodes to a lone surrogate
    that no exposition, page or database can write."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Errors:
    """Collects ``path: problem`` lines; ``raise_if_any`` turns them into one ConfigError.

    Every getter treats an explicit YAML ``null`` like an absent key: the default applies.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.more = 0  # problems found past MAX_LINES, counted only

    @property
    def count(self) -> int:
        """Every problem found, kept or only counted (compare before/after a parse step)."""
        return len(self.lines) + self.more

    def add(self, path: str, problem: str) -> None:
        """Record ``path: problem``."""
        self.append(f"{path}: {problem}")

    def append(self, line: str) -> None:
        """Record a line already written as ``path: problem`` (counted only past MAX_LINES)."""
        if len(self.lines) < MAX_LINES:
            self.lines.append(line)
        else:
            self.more += 1

    def extend(self, lines: Iterable[str]) -> None:
        """Record several ``path: problem`` lines."""
        for line in lines:
            self.append(line)

    def report(self) -> list[str]:
        """The kept lines, plus ``… and N more problems`` when some were only counted."""
        return self.lines + ([f"… and {self.more} more problems"] if self.more else [])

    def raise_if_any(self) -> None:
        """Raise ConfigError with :meth:`report`'s lines when any problem was recorded."""
        if self.lines:
            raise ConfigError(self.report())

    def mapping(self, raw: object, path: str, allowed: frozenset[str]) -> Mapping[str, Any]:
        """Return raw as a mapping (empty on error), reporting unknown keys."""
        if raw is None:
            return {}
        if not isinstance(raw, Mapping):
            self.add(path or "config", f"must be a mapping, got {type_name(raw)}")
            return {}
        for key in raw:
            if not isinstance(key, str) or key not in allowed:
                where = f"{path}.{key_text(key)}" if path else key_text(key)
                self.add(where, "unknown field")
        return raw

    def string(self, raw: Mapping[str, Any], key: str, path: str,
               default: str | None) -> str | None:
        """``raw[key]`` as valid Unicode text, else ``default`` with ``path+key: problem``
        recorded."""
        value = raw.get(key)
        if value is None:
            return default
        if isinstance(value, str) and not is_text(value):
            self.add(f"{path}{key}", "must be valid Unicode text (found a lone surrogate)")
            return default
        if isinstance(value, str):
            return value
        self.add(f"{path}{key}", f"must be a string, got {type_name(value)}")
        return default

    def integer(self, raw: Mapping[str, Any], key: str, path: str, default: int | None,
                minimum: int | None = None, maximum: int | None = None) -> int | None:
        """``raw[key]`` as an integer (not a boolean) within ``[minimum, maximum]``, else
        ``default`` with the problem recorded."""
        value = raw.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(f"{path}{key}", f"must be an integer, got {type_name(value)}")
            return default
        if minimum is not None and value < minimum:
            self.add(f"{path}{key}", f"must be >= {minimum}, got {show(value)}")
            return default
        if maximum is not None and value > maximum:
            self.add(f"{path}{key}", f"must be <= {maximum}, got {show(value)}")
            return default
        return value

    def number(self, raw: Mapping[str, Any], key: str, path: str, default: float,
               low: float = 0.0, high: float | None = None, low_inclusive: bool = False) -> float:
        """A finite number in (low, high] (or [low, high] with low_inclusive)."""
        value = raw.get(key)
        if value is None:
            return default
        where = f"{path}{key}"
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.add(where, f"must be a number, got {type_name(value)}")
            return default
        number = _finite(value)
        if number is None:
            self.add(where, f"must be a finite number, got {show(value)}")
            return default
        too_low = number < low if low_inclusive else number <= low
        if too_low:
            self.add(where, f"must be {'>=' if low_inclusive else '>'} {low:g}, got {show(value)}")
            return default
        if high is not None and number > high:
            self.add(where, f"must be <= {high:g}, got {show(value)}")
            return default
        return number

    def boolean(self, raw: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        """``raw[key]`` as a YAML boolean, else ``default`` with the problem recorded."""
        value = raw.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(f"{path}{key}", f"must be true or false, got {type_name(value)}")
            return default
        return value

    def duration(self, raw: Mapping[str, Any], key: str, path: str, default: float,
                 positive: bool = True) -> float:
        """``raw[key]`` as seconds from a Prometheus duration string (``"15s"``, ``"1m30s"``), >
        0 unless ``positive`` is False; else ``default`` with the problem recorded."""
        value = raw.get(key)
        if value is None:
            return default
        where = f"{path}{key}"
        if not isinstance(value, str):
            self.add(where, f'must be a duration string like "15s", got {type_name(value)}')
            return default
        try:
            seconds = parse_duration(value)
        except DurationError as exc:
            self.add(where, str(exc))
            return default
        if positive and seconds <= 0:
            self.add(where, f'must be > 0, got "{value}"')
            return default
        return seconds

    def label_name(self, name: object, path: str, reserved: frozenset[str]) -> bool:
        """True for a name Prometheus accepts that the exporter does not use itself."""
        if (not isinstance(name, str) or not LABEL_NAME.fullmatch(name)
                or name.startswith("__")):
            self.add(path, f"invalid label name {show(name)} (must match "
                           f"[a-zA-Z_][a-zA-Z0-9_]* and not start with __)")
            return False
        if name in reserved:
            self.add(path, f"label name {name!r} is reserved by the exporter")
            return False
        return True


def _finite(value: int | float) -> float | None:
    """value as a finite float, or None for NaN, infinities and integers beyond float range."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
