"""THE strict YAML loader: config, target files, web config and simulator scenarios all use it.

PyYAML's ``safe_load`` keeps the last of two equal keys in one mapping; a config that names a
user, a target field or ``poll_interval`` twice is almost always a mistake, so this loader refuses
it (as the Go exporter-toolkit's strict decoding does). Merge keys (``<<``) are allowed, and keys
they bring in may be overridden. Every failure is one :class:`YamlError` with the position, so
each caller words its message as before (``config: invalid YAML at line 3: …``).

YAML 1.1 turns unquoted scalars into other types: ``1.10`` into the float 1.1, ``yes``/``on``
into true, ``012`` into 10, ``0x1F`` into 31, ``1_000`` into 1000, ``2026-01-02`` into a date,
``~`` into null. Where the exporter wants text the operator wrote (label names and values,
task and session ids, user names, app ids as keys), the caller names those places and the
loader keeps the scalar exactly as written (:data:`TEXT_FIELDS`, :data:`TEXT_MAPPINGS`), as the
Go exporters' YAML decoding into a string does.
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


_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_NULL = "tag:yaml.org,2002:null"  # "", ~ and null still mean "not set"
TEXT_FIELDS = frozenset({"task_id", "session_id"})
"""Keys whose plain scalar value is kept as written (config and target files)."""
TEXT_MAPPINGS = frozenset({"labels", "apps", "basic_auth_users"})
"""Keys whose mapping keeps its plain scalar keys and values as written."""


def _as_text(node: yaml.Node) -> None:
    """Make a plain scalar node construct as the text written (``1.10`` stays "1.10")."""
    # plain style is None from the pure parser and "" from libyaml's
    if isinstance(node, yaml.ScalarNode) and node.tag not in (_MERGE, _NULL) and not node.style:
        node.tag = _STR


class _Strict:
    """Mixed into a loader: rejects a key given twice in one mapping (PyYAML keeps the last) and
    keeps the text of scalars under :data:`TEXT_FIELDS` and :data:`TEXT_MAPPINGS` keys."""

    text_fields: frozenset[str] = frozenset()
    text_mappings: frozenset[str] = frozenset()

    def _keep_text(self, node: yaml.MappingNode) -> None:
        for key_node, value_node in node.value:
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if name in self.text_fields:
                _as_text(value_node)
            elif name in self.text_mappings and isinstance(value_node, yaml.MappingNode):
                for inner_key, inner_value in value_node.value:
                    _as_text(inner_key)
                    if name != "apps":  # an app's value is its settings mapping
                        _as_text(inner_value)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self._keep_text(node)
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


class _TextLoader(_StrictLoader):
    text_fields = TEXT_FIELDS
    text_mappings = TEXT_MAPPINGS


def _fast(text_fields: frozenset[str], text_mappings: frozenset[str]) -> type | None:
    """The same loader over libyaml's parser (PyYAML's CSafeLoader), None without libyaml."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    return type("_FastLoader", (_Strict, yaml.CSafeLoader),
                {"text_fields": text_fields, "text_mappings": text_mappings})


# libyaml parses several times faster (a 10 000-target config: 0.16 s instead of 0.58 s)
_FAST = {False: _fast(frozenset(), frozenset()), True: _fast(TEXT_FIELDS, TEXT_MAPPINGS)}


def load_yaml(text: str | bytes, keep_text: bool = False) -> object:
    """Parse one YAML document strictly; raises :class:`YamlError` for any failure.

    ``keep_text`` keeps scalars under :data:`TEXT_FIELDS` and in :data:`TEXT_MAPPINGS` as the
    text written (config, target files, web config); the simulator's scenarios leave it off.
    Parsed by libyaml when present; any failure there is parsed again by the pure loader, so
    error messages and positions are the same with or without libyaml.
    """
    fast = _FAST[keep_text]
    if fast is not None:
        try:
            return yaml.load(text, Loader=fast)  # noqa: S506 - a CSafeLoader subclass
        except (yaml.YAMLError, ValueError, RecursionError):
            pass  # the pure loader words the message
    return _load_pure(text, keep_text)


def _load_pure(text: str | bytes, keep_text: bool = False) -> object:
    loader = _TextLoader if keep_text else _StrictLoader
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
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


_FAST_LOADER = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
_NODE_EVENTS = (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)


@dataclass(frozen=True)
class Outline:
    """What :func:`outline` saw: the item count of one list (stopped past ``limit``) and the
    top-level scalars as written."""

    items: int
    scalars: dict[str, str]


def outline(text: str, key: str | None, limit: int | None = None) -> Outline:
    """Count the items of the top-level list (``key`` None) or of the list under a top-level
    ``key``, streaming parser events: no node tree is built, so a 100 000-entry file is counted
    in bounded memory (and in a fraction of a second with libyaml) before anything is validated.

    Stops counting at ``limit`` + 1. Text that does not parse counts 0: the full load reports it.
    """
    depth, items, child_depth = 0, 0, -1
    scalars: dict[str, str] = {}
    root_mapping, expect_key, last_key = False, True, None
    try:
        for event in yaml.parse(text, Loader=_FAST_LOADER):
            if isinstance(event, _NODE_EVENTS):
                if depth == child_depth:
                    items += 1
                    if limit is not None and items > limit:
                        break
                if depth == 0:
                    root_mapping = isinstance(event, yaml.MappingStartEvent)
                    if key is None and isinstance(event, yaml.SequenceStartEvent):
                        child_depth = 1
                elif depth == 1 and root_mapping:
                    if expect_key:
                        last_key = event.value if isinstance(event, yaml.ScalarEvent) else None
                    elif last_key is not None:
                        if last_key == key and isinstance(event, yaml.SequenceStartEvent):
                            child_depth = 2
                        elif isinstance(event, yaml.ScalarEvent):
                            scalars[last_key] = event.value
                    expect_key = not expect_key
            if isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
                if depth < child_depth:  # the list ended
                    child_depth = -2
    except yaml.YAMLError:
        return Outline(0, {})
    return Outline(items, scalars)
