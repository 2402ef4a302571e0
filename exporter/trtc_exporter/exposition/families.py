"""Empty metric families built from the one declaration of names, HELP and labels (metrics.py)."""

from __future__ import annotations

from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from trtc_exporter.generations import STATES
from trtc_exporter.metrics import BY_NAME, Spec
from trtc_exporter.response import NOT_FOUND, UNKNOWN

SOURCES = ("config", "file", "api")
"""Values of the ``source`` label of target families, always all present (plus ``webhook``
while the callback listener is on)."""
WEBHOOK_SOURCE = "webhook"


def family(name: str, extra: tuple[str, ...] = ()) -> Any:
    """A fresh family for a declared metric; ``extra`` appends operator label names."""
    spec: Spec = BY_NAME[name]
    if spec.kind == "counter":
        return CounterMetricFamily(name.removesuffix("_total"), spec.help,
                                   labels=spec.labels + extra)
    return GaugeMetricFamily(name, spec.help, labels=spec.labels + extra)


def states_of(action: str) -> tuple[str, ...]:
    """Every value of the status StateSet for an action: the API's states, Unknown, NotFound."""
    return STATES[action] + (UNKNOWN, NOT_FOUND)
