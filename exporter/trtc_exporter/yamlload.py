"""THE strict YAML loader: config, target files, web config and simulator scenarios all use it.

PyYAML's ``safe_load`` keeps the last of two equal keys in one mapping; a config that names a
user, a target field or ``poll_interval`` twice is almost always a mistake, so this loader refuses
it (as the Go exporter-toolkit's strict decoding does). Merge keys (``<<``) are allowed, and keys
they bring in may be overridden. Every failure is one :class:`YamlError` with the position, so
each caller words its message as before (``config: invalid YAML at line 3: …``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from trtc_exporter.errors import show


@dataclass(frozen=True)
class YamlError(ValueError):
    """Text that is not YAML, or has a duplicate key. ``line``/``column`` are 1-based, 0 unknown.

    ``converting`` marks a value PyYAML could not convert (a 5 000-digit integer, 2026-13-45).
    """

    problem: str
    line: int = 0
    column: int = 0
    converting: bool = False
    summary: str = ""  # PyYAML's first line ("while parsing a flow node"), for short messages

    def __str__(self) -> str:
        where = f" at line {self.line}, column {self.column}" if self.line else ""
        return f"invalid YAML{where}: {self.problem}"


class _Strict:
    """Rejects a key given twice in one mapping (PyYAML keeps the last); mixed into a loader."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[attr-defined]
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: SafeLoader reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {show(key)}", key_node.start_mark)
        return super().construct_mapping(node, deep)  # type: ignore[misc, no-any-return]


class _StrictLoader(_Strict, yaml.SafeLoader):
    """The pure-Python strict loader: the one that words every error message."""


# libyaml parses about ten times faster; PyYAML without it has no CSafeLoader
_FastLoader: type | None = (type("_FastLoader", (_Strict, yaml.CSafeLoader), {})
                            if getattr(yaml, "__with_libyaml__", False) else None)


def load_yaml(text: str | bytes) -> object:
    """Parse one YAML document strictly; raises :class:`YamlError` for any failure.

    Parsed by libyaml (PyYAML's ``CSafeLoader``) when present; any failure there is parsed again
    by the pure loader, so error messages and positions are the same with or without libyaml.
    """
    if _FastLoader is not None:
        try:
            return yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a CSafeLoader subclass
        except (yaml.YAMLError, ValueError, RecursionError):
            pass  # the pure loader words the message
    return _load_pure(text)


def _load_pure(text: str | bytes) -> object:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        first = (str(exc).splitlines() or ["unreadable"])[0]
        problem = getattr(exc, "problem", None) or first
        if mark is None:
            raise YamlError(problem, summary=first) from None
        raise YamlError(problem, mark.line + 1, mark.column + 1, summary=first) from None
    except ValueError as exc:  # PyYAML lets int()/date() errors through: 2026-13-45, 5000 digits
        first = (str(exc).splitlines() or ["unreadable"])[0]
        raise YamlError(str(exc).split(";")[0], converting=True, summary=first) from None
    except RecursionError:
        raise YamlError("nested too deeply", summary="nested too deeply") from None
