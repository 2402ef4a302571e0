"""The two interval rules every part shares: the effective interval and the staleness multiple.

``effective_interval`` is THE place where a base interval meets the capacity plan's stretch;
``STALE_AFTER_INTERVALS`` is THE "three intervals" of the Unknown status and of /-/healthy.
"""

from __future__ import annotations

STALE_AFTER_INTERVALS = 3
"""An answer older than this many planned intervals shows as Unknown; a poller without progress
for this many effective intervals (plus a grace) is unhealthy."""


def effective_interval(base: float, stretch: float) -> float:
    """Seconds between polls after capacity planning: ``base`` seconds times ``stretch`` (>= 1)."""
    return base * stretch
