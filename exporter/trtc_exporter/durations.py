"""Prometheus duration strings (``500ms``, ``15s``, ``1h30m``), the syntax operators know.

Same grammar and range as Prometheus' ``model.ParseDuration``: ASCII digits, units
``y w d h m s ms`` largest first and each at most once, ``"0"`` alone allowed, and at most
2^63-1 nanoseconds (about 292 years).
"""

from __future__ import annotations

import math
import re

_UNITS = (("y", 365 * 86_400_000), ("w", 7 * 86_400_000), ("d", 86_400_000),
          ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))
_PATTERN = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?"
    r"(?:([0-9]+)ms)?"
)
MAX_MILLISECONDS = (2**63 - 1) // 1_000_000
_MAX_DIGITS = len(str(MAX_MILLISECONDS))


class DurationError(ValueError):
    """A string that is not a Prometheus duration."""


def parse_duration(text: str) -> float:
    """Return seconds for a Prometheus duration; units must appear largest first, each once."""
    if text == "0":
        return 0.0
    match = _PATTERN.fullmatch(text)
    if not text or match is None:
        raise DurationError(f'not a valid duration string: "{_shown(text)}"')
    millis = 0
    for digits, (_, scale) in zip(match.groups(), _UNITS, strict=True):
        if digits is None:
            continue
        if len(digits.lstrip("0")) > _MAX_DIGITS:
            raise DurationError(f'duration out of range: "{_shown(text)}"')
        millis += int(digits) * scale
    if millis > MAX_MILLISECONDS:
        raise DurationError(f'duration out of range: "{_shown(text)}"')
    return millis / 1000


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus prints durations (``1m30s``, ``500ms``, ``0s``).

    Rounded to whole milliseconds; negative values get a leading ``-``; NaN and infinities
    print as Python does (``nan``, ``inf``) instead of raising.
    """
    if not math.isfinite(seconds):
        return str(seconds)
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    sign, millis = ("-", -millis) if millis < 0 else ("", millis)
    parts = []
    for unit, scale in _UNITS:
        if millis >= scale:
            count, millis = divmod(millis, scale)
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def _shown(text: str) -> str:
    """The text for a one-line message: shortened, control characters escaped."""
    text = text if len(text) <= 40 else text[:37] + "..."
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def parse_seconds(value: object, *, allow_forever: bool) -> tuple[float | None, str | None]:
    """Seconds from a number (``12``, ``0.5``), a Prometheus duration string (``"1m30s"``,
    ``"500ms"``) or ``"forever"`` (when allowed, as ``math.inf``), for hand-written files such
    as simulator scenarios. Strings follow :func:`parse_duration` exactly, so ``"1.5s"`` is
    refused here as in Prometheus; write ``1.5`` or ``"1500ms"``.

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
        if value == "forever" and allow_forever:
            return math.inf, None
        try:
            return parse_duration(value), None
        except DurationError:
            pass
    return None, f"must be {expected}, got {value!r}"
