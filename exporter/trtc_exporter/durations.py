"""Prometheus duration strings (``500ms``, ``15s``, ``1h30m``), the syntax operators already know."""

from __future__ import annotations

import re

_UNITS = (("y", 365 * 86400.0), ("w", 7 * 86400.0), ("d", 86400.0), ("h", 3600.0),
          ("m", 60.0), ("s", 1.0), ("ms", 0.001))
_PATTERN = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)


class DurationError(ValueError):
    """A string that is not a Prometheus duration."""


def parse_duration(text: str) -> float:
    """Return seconds for a Prometheus duration; units must appear largest first, each once."""
    if text == "0":
        return 0.0
    match = _PATTERN.match(text)
    if not text or match is None:
        raise DurationError(f'not a valid duration string: "{text}"')
    return sum(int(g) * scale for g, (_, scale) in zip(match.groups(), _UNITS, strict=True) if g)


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus prints durations (``1m30s``, ``500ms``)."""
    if seconds == 0:
        return "0s"
    millis = round(seconds * 1000)
    parts = []
    for unit, scale in _UNITS:
        step = round(scale * 1000)
        if millis >= step:
            count, millis = divmod(millis, step)
            parts.append(f"{count}{unit}")
    return "".join(parts)
