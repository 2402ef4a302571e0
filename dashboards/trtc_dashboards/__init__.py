"""Grafana dashboards of trtc-transcription-exporter, built with grafana-foundation-sdk.

DASHBOARDS maps each committed JSON file name (in dashboards/) to the function building it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import api_health, internals, overview, usage

DASHBOARDS: dict[str, Callable[[], Any]] = {
    "trtc-transcription-overview.json": overview.build,
    "trtc-api-health.json": api_health.build,
    "trtc-exporter-internals.json": internals.build,
    "trtc-usage-cost.json": usage.build,
}
