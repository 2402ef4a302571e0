"""The whole ``/metrics`` body: client_python's families around the pre-rendered task section.

The body is, in this order (the golden test pins it): the API client's instruments (``head``),
the per-target task families (:class:`~trtc_exporter.exposition.fragments.TaskFragments`), and
the other collectors (``tail``: per-app totals, budget and poller, the exporter itself), which
client_python keeps encoding. OpenMetrics' ``# EOF`` closes the whole body only. ``full`` is the
same content as one registry (the task families from :class:`TaskCollector`): it serves the rare
Accept header whose escaping rewrites metric names (``escaping=dots``), which the fast path does
not implement.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.openmetrics import exposition as om

from trtc_exporter.exposition.fragments import TaskFragments

log = logging.getLogger("trtc_exporter.collector")  # the logger of TaskCollector's failures
Encoder = Callable[[CollectorRegistry], bytes]
EOF = b"# EOF\n"


def encoder_for(accept: str) -> tuple[Encoder, str]:
    """client_python's encoder and Content-Type for an Accept header (text format when the
    header is one client_python refuses, e.g. ``version=abc``)."""
    try:
        return choose_encoder(accept)
    except Exception:  # client_python raises on a malformed version: serve the text format
        return choose_encoder("")


def _fast_format(encoder: Encoder) -> bool | None:
    """True for OpenMetrics, False for the text format, None when names would be rewritten."""
    keywords = getattr(encoder, "keywords", {})
    if keywords.get("escaping", om.UNDERSCORES) == om.DOTS:
        return None  # dots escaping rewrites every "_" of the names: let client_python do it
    return getattr(encoder, "func", encoder) is om.generate_latest


class Exposition:
    """Renders ``/metrics`` for an Accept header as byte pieces (join them, or write in turn)."""

    def __init__(self, head: CollectorRegistry, tasks: TaskFragments, tail: CollectorRegistry,
                 full: CollectorRegistry) -> None:
        self._head = head
        self._tasks = tasks
        self._tail = tail
        self._full = full

    def render(self, accept: str) -> tuple[list[bytes], str]:
        """(pieces of the body, Content-Type) for an Accept header."""
        encoder, content_type = encoder_for(accept)
        openmetrics = _fast_format(encoder)
        if openmetrics is None:
            return [encoder(self._full)], content_type
        head = encoder(self._head)
        if openmetrics:
            head = head.removesuffix(EOF)
        return [head, *self._task_section(openmetrics), encoder(self._tail)], content_type

    def _task_section(self, openmetrics: bool) -> list[bytes]:
        try:
            return self._tasks.render(openmetrics)
        except Exception:  # as TaskCollector: a rendering bug must not turn /metrics into a 500
            log.exception("collector failed; serving exporter health only")
            return []
