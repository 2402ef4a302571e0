"""The two interval rules every part shares: the effective interval and the staleness multiple.

``effective_interval`` is THE place where a base interval meets the capacity plan's stretch;
``STALE_AFTER_INTERVALS`` is THE "three intervals" of the Unknown status and of /-/healthy
(there measured as lateness of the most overdue poll, see ``stall_limit``).
"""

from __future__ import annotations

STALE_AFTER_INTERVALS = 3
"""An answer older than this many planned intervals shows as Unknown; a poller without progress
for this many effective intervals (plus a grace) is unhealthy."""


def effective_interval(base: float, stretch: float) -> float:
    """Seconds between polls after capacity planning: ``base`` seconds times ``stretch`` (>= 1)."""
    return base * stretch


STALL_GRACE = 5.0
"""Seconds of slack on top of the stall limit (thread scheduling, a scrape holding the GIL)."""


def stall_limit(interval: float, timeout: float, max_retries: int) -> float:
    """How overdue (seconds) the oldest due poll may be before the poller counts as stalled:
    STALE_AFTER_INTERVALS effective intervals, plus the longest one poll may legitimately take
    (every attempt timing out), plus STALL_GRACE."""
    return STALE_AFTER_INTERVALS * interval + timeout * (max_retries + 1) + STALL_GRACE
