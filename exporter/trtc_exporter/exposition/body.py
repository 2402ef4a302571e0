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
from collections.abc import Callable, Iterable, Iterator
from itertools import chain

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.openmetrics import exposition as om
from prometheus_client.registry import Collector

from trtc_exporter.exposition.fragments import TaskFragments

log = logging.getLogger("trtc_exporter.collector")  # the logger of TaskCollector's failures
Encoder = Callable[..., bytes]  # client_python's encoders, as web/negotiation chooses them
EOF = b"# EOF\n"


def _fast_format(encoder: Encoder) -> bool | None:
    """True for OpenMetrics, False for the text format, None when names would be rewritten."""
    keywords = getattr(encoder, "keywords", {})
    if keywords.get("escaping", om.UNDERSCORES) == om.DOTS:
        return None  # dots escaping rewrites every "_" of the names: let client_python do it
    return getattr(encoder, "func", encoder) is om.generate_latest


class Exposition:
    """Renders ``/metrics`` with one of client_python's encoders as byte pieces (join them, or
    write them in turn)."""

    def __init__(self, head: CollectorRegistry, tasks: TaskFragments, tail: CollectorRegistry,
                 full: CollectorRegistry) -> None:
        self._head = head
        self._tasks = tasks
        self._tail = tail
        self._full = full

    def render(self, encoder: Encoder) -> list[bytes]:
        """The pieces of the body, as ``encoder(full)`` would write it whole."""
        return list(self._pieces(encoder, lazy=False))

    def stream(self, encoder: Encoder) -> Iterable[bytes]:
        """The bytes of :meth:`render`, the task section in pieces joined as they are consumed
        (:meth:`TaskFragments.stream`): for a consumer that compresses each piece in turn."""
        return self._pieces(encoder, lazy=True)

    def _pieces(self, encoder: Encoder, lazy: bool) -> Iterable[bytes]:
        """Head (without OpenMetrics' ``# EOF``), task section, tail; or the whole registry
        through ``encoder`` when it is not one of the formats the fast path knows."""
        openmetrics = _fast_format(encoder)
        if openmetrics is None:
            return [encoder(self._full)]
        head = encoder(self._head)
        if openmetrics:
            head = head.removesuffix(EOF)
        section = self._task_section(openmetrics, lazy=lazy)
        return chain([head], section, [encoder(self._tail)])

    def _task_section(self, openmetrics: bool, lazy: bool = False) -> Iterable[bytes]:
        try:
            if lazy:  # the snapshot, where a bug would raise, is taken here; joins come later
                return self._tasks.stream(openmetrics)
            return self._tasks.render(openmetrics)
        except Exception:  # as TaskCollector: a rendering bug must not turn /metrics into a 500
            log.exception("collector failed; serving exporter health only")
            return []


class Section(Collector):
    """A registry registered inside another one without being collected at registration (its
    ``describe`` is empty, as for every collector of ours)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def describe(self) -> list[Metric]:
        """Nothing: registering must not collect (see the class docstring)."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Every family of the wrapped registry, in its registration order."""
        return iter(self._registry.collect())
