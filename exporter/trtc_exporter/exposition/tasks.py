"""Per-target task families (status StateSet, times, info, poll success, running seconds).

Renders a snapshot of plain target states; never calls the API, never raises. ``/metrics``
registers it for every target, ``/probe`` for the probed target only (``only=``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.dropped import printable_target
from trtc_exporter.exposition.families import family, states_of
from trtc_exporter.exposition.guard import rendered
from trtc_exporter.metrics import DropCounter
from trtc_exporter.polling.state import TargetState

log = logging.getLogger("trtc_exporter.collector")  # caller= stays as before
TASK_FAMILIES = (
    "trtc_ai_transcription_status", "trtc_ai_transcription_start_time_seconds",
    "trtc_ai_transcription_status_change_time_seconds", "trtc_ai_transcription_info",
    "trtc_ai_transcription_last_success_time_seconds", "trtc_ai_transcription_poll_success",
    "trtc_ai_transcription_running_seconds")


class TaskCollector(Collector):
    """The task families of the targets in ``states()`` (all, or those ``only`` selects).

    ``states`` returns the poller's current snapshot; ``now`` wall-clock seconds.
    ``describe()`` yields nothing so that registering does not run ``collect()``.
    """

    def __init__(self, states: Callable[[], list[TargetState]], now: Callable[[], WallSeconds],
                 only: Callable[[TargetState], bool] | None = None,
                 drops: DropCounter | None = None) -> None:
        self._states = states
        self._now = now
        self._only = only
        self._drops = drops or DropCounter()

    def describe(self) -> Iterator[Metric]:
        """Nothing: ``register()`` then never calls ``collect()`` (client_python's
        auto-describe)."""
        return iter(())

    def collect(self) -> Iterator[Metric]:
        """Fresh families on every call; an error is logged and yields nothing."""
        yield from rendered(self._families, log, "collector failed; serving exporter health only")

    def _families(self) -> list[Metric]:
        now = self._now()
        chosen = (s for s in self._states() if self._only is None or self._only(s))
        states = sorted(self._printable(chosen), key=lambda s: s.target.key)
        extra = tuple(sorted({name for s in states for name, _ in s.target.labels}))
        fam = {n: family(n, extra) for n in TASK_FAMILIES}
        for state in states:
            marks = {name: len(f.samples) for name, f in fam.items()}
            try:
                _add_task(fam, state, extra, now)
            except Exception:  # leave nothing of this target behind, serve the others
                log.exception("rendering %s failed; its series are left out",
                              state.target.describe())
                self._drops.add("render_error")
                for name, f in fam.items():
                    del f.samples[marks[name]:]
        return list(fam.values())

    def _printable(self, states: Iterable[TargetState]) -> Iterator[TargetState]:
        """States whose label values can be written (valid Unicode, bounded); others counted."""
        for state in states:
            if printable_target(state.target, (state.resolved_task_id,)):
                yield state
            else:
                self._drops.add("invalid_text")


def _add_task(fam: dict[str, Any], state: TargetState, extra: tuple[str, ...],
              now: WallSeconds) -> None:
    target = state.target
    own = dict(target.labels)
    ident = list(target.key) + [own.get(name, "") for name in extra]
    shown = state.shown_status(now)
    status_fam = fam["trtc_ai_transcription_status"]
    for status in states_of(target.action):
        status_fam.add_metric(list(target.key) + [status] + ident[5:],
                              1.0 if status == shown else 0.0)
    if state.start_time is not None:
        fam["trtc_ai_transcription_start_time_seconds"].add_metric(ident, state.start_time)
    if state.status_change_time is not None:
        fam["trtc_ai_transcription_status_change_time_seconds"].add_metric(
            ident, state.status_change_time)
    fam["trtc_ai_transcription_info"].add_metric(
        list(target.key) + [state.resolved_task_id] + ident[5:], 1.0)
    fam["trtc_ai_transcription_last_success_time_seconds"].add_metric(ident, state.last_success)
    fam["trtc_ai_transcription_poll_success"].add_metric(ident, float(bool(state.poll_success)))
    if shown == "InProgress" and state.start_time is not None:
        fam["trtc_ai_transcription_running_seconds"].add_metric(
            ident, max(0.0, now - state.start_time))
