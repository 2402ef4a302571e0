"""Durations in scenario files: plain seconds, Prometheus-style strings, or ``forever``.

Kept apart so the scenario loader and the fault parser report duration mistakes identically.
"""

from __future__ import annotations

import math
import re

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_seconds(value: object, *, allow_forever: bool) -> tuple[float | None, str | None]:
    """Seconds from ``12``, ``0.5``, ``"1m30s"``, ``"500ms"`` or ``"forever"`` (when allowed).

    Returns ``(seconds, None)`` or ``(None, problem)`` so callers can prefix the field path.
    """
    expected = "a number of seconds, a duration like 1m30s"
    expected += " or forever" if allow_forever else ""
    if isinstance(value, bool):
        return None, f"must be {expected}, got {value!r}"
    if isinstance(value, (int, float)):
        if value < 0 or math.isnan(value):
            return None, f"must be >= 0, got {value!r}"
        if math.isinf(value) and not allow_forever:
            return None, f"must be finite, got {value!r}"
        return float(value), None
    if isinstance(value, str):
        text = value.strip()
        if text == "forever" and allow_forever:
            return math.inf, None
        parts = _PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNIT[u] for n, u in parts), None
    return None, f"must be {expected}, got {value!r}"
