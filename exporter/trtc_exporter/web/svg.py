"""Inline SVG for the landing page: a target's status strip and a budget bar.

Drawn with presentation attributes only (no ``style``), so a strict Content-Security-Policy
without ``'unsafe-inline'`` still renders them. Each drawing carries ``role="img"`` and an
``aria-label`` saying in words what it shows.
"""

from __future__ import annotations

from html import escape
from time import gmtime, strftime

from trtc_exporter.response import UNKNOWN

WINDOW_SECONDS = 3600.0
"""The status strip covers the last hour."""

FILLS = {"InProgress": "#2e9e4f", "Idle": "#d9a400", "Preparing": "#f0c948",
         "Stopped": "#8795a8", "Exited": "#8795a8", "NotFound": "#d0453a", UNKNOWN: "#e1e5ea"}
STRIP_WIDTH, STRIP_HEIGHT = 120, 14

Segment = tuple[float, float, str]  # (start, end) wall-clock seconds, status


def segments(history: tuple[tuple[float, str], ...], now: float,
             stale_since: float | None) -> list[Segment]:
    """The last hour cut into (start, end, status) pieces, oldest first.

    ``history`` is the target's (time, new status) transitions; before the first one the
    status is Unknown. ``stale_since`` (wall-clock seconds) turns the tail Unknown from then on
    (no answer for too long), as the metrics do.
    """
    start = now - WINDOW_SECONDS
    points = [(start, UNKNOWN)]
    for when, status in history:
        if when <= start:
            points[0] = (start, status)  # the status in force when the window opens
        elif when < now:
            points.append((when, status))
    if stale_since is not None and stale_since < now:
        points = [p for p in points if p[0] < stale_since] + [(max(stale_since, start), UNKNOWN)]
    ends = [p[0] for p in points[1:]] + [now]
    return [(when, end, status) for (when, status), end in zip(points, ends, strict=True)
            if end > when]


def _clock(seconds: float) -> str:
    return strftime("%H:%M", gmtime(seconds))


def status_strip(history: tuple[tuple[float, str], ...], now: float,
                 stale_since: float | None) -> str:
    """The SVG strip (width STRIP_WIDTH px) of the last hour's statuses; times in UTC."""
    parts, words = [], []
    scale = STRIP_WIDTH / WINDOW_SECONDS
    for start, end, status in segments(history, now, stale_since):
        x = (start - (now - WINDOW_SECONDS)) * scale
        width = max((end - start) * scale, 0.5)
        fill = FILLS.get(status, FILLS[UNKNOWN])
        parts.append(f'<rect x="{x:.1f}" y="0" width="{width:.1f}" height="{STRIP_HEIGHT}" '
                     f'fill="{fill}"/>')
        words.append(f"{status} from {_clock(start)}")
    label = escape("Last hour (UTC): " + ", ".join(words))
    return (f'<svg class="strip" width="{STRIP_WIDTH}" height="{STRIP_HEIGHT}" '
            f'viewBox="0 0 {STRIP_WIDTH} {STRIP_HEIGHT}" role="img" aria-label="{label}">'
            f'<title>{label}</title><rect x="0" y="0" width="{STRIP_WIDTH}" '
            f'height="{STRIP_HEIGHT}" fill="{FILLS[UNKNOWN]}"/>{"".join(parts)}</svg>')


def budget_bar(demand: float, limit: float, effective: float, width: int = 220) -> str:
    """A bar of ``demand`` against ``limit`` (req/s), with a tick at the ``effective`` rate.

    Over the limit the bar is full and red (the capacity plan stretches the intervals).
    """
    height = 12
    share = 0.0 if limit <= 0 else demand / limit
    fill = "#d0453a" if share > 1 else "#d9a400" if share > 0.8 else "#2e9e4f"
    used = min(share, 1.0) * width
    tick = "" if limit <= 0 or effective >= limit else (
        f'<rect x="{max(0.0, effective / limit * width - 1):.1f}" y="0" width="2" '
        f'height="{height}" fill="#14213d"/>')
    label = escape(f"{demand:.1f} of {limit:g} requests per second in use "
                   f"({share:.0%}); effective rate {effective:.1f}")
    return (f'<svg class="bar" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="{label}"><title>{label}</title>'
            f'<rect x="0" y="0" width="{width}" height="{height}" rx="3" fill="#e1e5ea"/>'
            f'<rect x="0" y="0" width="{used:.1f}" height="{height}" rx="3" fill="{fill}"/>'
            f"{tick}</svg>")
