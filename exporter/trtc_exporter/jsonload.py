"""THE strict JSON loader for what operators and callers send: registration bodies, JSON target
files and TRTC callbacks.

``json.loads`` keeps the last of two equal keys (``{"task_id": "a", "task_id": "b"}`` silently
names task ``b``) and accepts ``NaN`` and ``Infinity``, which RFC 8259 §6 does not allow. Both
are refused here, as the config's YAML loader refuses a key given twice, so every entrance reads
the same JSON the same way. Syntax errors stay :class:`json.JSONDecodeError` (with line and
column) and excessive nesting stays :class:`RecursionError`, for each caller to word.
"""

from __future__ import annotations

import json
from typing import Any

from trtc_exporter.errors import show


class JsonError(ValueError):
    """Valid-looking JSON that is ambiguous or not standard; the message is the problem alone
    ("key 'task_id' appears twice in one object", "NaN is not a JSON number")."""


def load_json(text: str | bytes) -> Any:
    """Parse ``text`` (str, or bytes in UTF-8/16/32 as :func:`json.loads` takes them).

    Raises :class:`JsonError` for a key given twice in one object or a NaN/Infinity constant,
    :class:`json.JSONDecodeError` (a ValueError) for a syntax error, :class:`UnicodeDecodeError`
    for bytes that are not text, ValueError for an integer of more than 4 300 digits and
    :class:`RecursionError` for nesting deeper than the interpreter's stack.
    """
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)


def _no_constant(name: str) -> None:
    raise JsonError(f"{name} is not a JSON number")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are unique: with two, which one the sender meant is unknown."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JsonError(f"key {show(key)} appears twice in one object")
        out[key] = value
    return out
