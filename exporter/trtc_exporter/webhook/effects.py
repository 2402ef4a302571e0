"""What an accepted callback changes in the exporter, as plain data, and who applies it.

The receiver decides; an :class:`EffectSink` (implemented by the exporter) applies. Effects carry
identities and times only, never transcribed text. ``event_time`` is Unix seconds (``EventMsTs``
/ 1000); ``generation`` is the ``api`` label value (``ai_transcription`` for 1.0 group 9,
``cloud_transcription`` for 2.0 group 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trtc_exporter.webhook.events import Event, Kind


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """901/1401 with Status 0: watch this task (dynamic target, source ``webhook``)."""

    app: int
    task_id: str
    generation: str
    event_time: float
    room_id: str
    room_id_type: int
    robot_id: str | None = None


@dataclass(frozen=True, slots=True)
class StartFailed:
    """901/1401 with Status 1: count a failed start for the app."""

    app: int
    task_id: str
    generation: str
    event_time: float


@dataclass(frozen=True, slots=True)
class TaskStopped:
    """902/1402: show the task Stopped now, with event_time as the change time."""

    app: int
    task_id: str
    generation: str
    event_time: float


@dataclass(frozen=True, slots=True)
class Sentence:
    """903/1403: one complete sentence; count it, set the task's last-sentence time."""

    app: int
    task_id: str
    generation: str
    event_time: float


Effect = TaskStarted | StartFailed | TaskStopped | Sentence


class EffectUnavailable(Exception):
    """An effect cannot be applied now, and a retry may succeed: the registration store or the
    coordination Redis is unreachable. The listener answers 503, so TRTC delivers again."""


class EffectSink(Protocol):
    """Applies effects to the exporter's targets and state (called once per unique event).

    Implementations must not block for long (it runs before the 200 goes back to TRTC, who
    waits 5 s at most) and must not raise; a confirming poll is to be queued, not awaited.
    """

    def apply(self, effect: Effect) -> bool:
        """Apply one effect (see the class docstring for the rules). True when applied, or when
        it never can be (a policy refusal such as ``max_targets``, logged and counted); False
        when it could not be applied now and a retry may succeed (:class:`EffectUnavailable`):
        the callback is then answered 503 and forgotten by the de-duplication, so TRTC's
        retry (at once, then every 10 s for a minute) applies it. Nothing answered 200 is
        lost."""


def effect_of(event: Event, app: int) -> Effect | None:
    """The effect of an event; None for 904 (sentence start) and 1404 (translation)."""
    when = event.event_ms_ts / 1000.0
    gen = event.generation
    if event.kind is Kind.STARTED:
        return TaskStarted(app, event.task_id, gen, when, event.room_id, event.room_id_type,
                           event.robot_id)
    if event.kind is Kind.START_FAILED:
        return StartFailed(app, event.task_id, gen, when)
    if event.kind is Kind.STOPPED:
        return TaskStopped(app, event.task_id, gen, when)
    if event.kind is Kind.SENTENCE:
        return Sentence(app, event.task_id, gen, when)
    return None
