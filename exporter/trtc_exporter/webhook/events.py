"""Parse a TRTC callback body into a small, frozen, text-free event.

Sources (checked with the search tool, see ``docs/webhooks.md``):

- 1.0, "Conversational AI & Speech-to-Text Callbacks" (doc 66149, https://trtc.io/document/66149,
  and its copy https://www.tencentcloud.com/document/product/647/68331): group 9 (AI service);
  901 task started (``Payload.Status`` 0 started, 1 failed to start), 902 stopped, 903 one complete
  sentence recognised (text, and translation when enabled), 904 start of a sentence; 905, 906,
  908, 909 concern conversational AI (907 is not listed: we treat 905-909 alike). ``EventMsTs`` is
  typed String in the table and a number in the examples.
- 2.0, "AI Transcription/Translation 2.0 Callback Event" (doc 80094, English, updated 2026-05-27;
  Chinese doc https://cloud.tencent.com/document/product/647/129976 lists the types): group 14;
  1401 start (example with ``RobotId`` and ``Payload.Status`` 0), 1402 task ended, 1403 one complete
  ASR sentence, 1404 one complete translated sentence.
- Room ids: numeric 1-4294967294, string up to 64 bytes (TRTC SDK ``TRTCParams.strRoomId``).
  TaskId has no documented length (the docs' example is 81 characters): we allow 256.

Privacy: a sentence event carries what people said. The parser never copies ``Payload`` beyond
``Status`` into the event, and no error message quotes a ``Payload`` value.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trtc_exporter.errors import is_text, show, type_name
from trtc_exporter.jsonload import JsonError, load_json
from trtc_exporter.target import MAX_ID_CHARS, text_problem

MAX_BODY_BYTES = 64 * 1024
MAX_TASK_ID_CHARS = MAX_ID_CHARS  # one bound for TaskIds wherever they come from
MAX_ROOM_ID_BYTES = 64
MAX_ROBOT_ID_CHARS = 256
MAX_NUMERIC_ROOM = 4_294_967_294
_MAX_MS = 10**14  # year 5138: any larger "millisecond" value is a unit mistake
_MAX_DIGITS = 16

GROUP_V1, GROUP_V2 = 9, 14
GENERATION = {GROUP_V1: "ai_transcription", GROUP_V2: "cloud_transcription"}
"""Event group → the exporter's ``api`` label value (1.0 DescribeAITranscription, 2.0
DescribeCloudTranscription); must stay equal to ``trtc_exporter.target`` AI_/CLOUD_TRANSCRIPTION."""


class Kind(enum.Enum):
    """What a callback means for the exporter, from its (EventGroupId, EventType) and
    ``Payload.Status`` (TRTC docs 66149 for 1.0 and 80094 for 2.0, see the module docstring)."""
    STARTED = "started"  # 901/1401 with Payload.Status 0
    START_FAILED = "start_failed"  # 901/1401 with Payload.Status 1
    STOPPED = "stopped"  # 902/1402
    SENTENCE = "sentence"  # 903/1403: one complete recognised sentence
    SENTENCE_START = "sentence_start"  # 904: a sentence has begun (1.0 only)
    TRANSLATION = "translation"  # 1404: one complete translated sentence (2.0 only)


_KINDS: dict[tuple[int, int], Kind | None] = {
    (9, 901): None, (9, 902): Kind.STOPPED, (9, 903): Kind.SENTENCE, (9, 904): Kind.SENTENCE_START,
    (14, 1401): None, (14, 1402): Kind.STOPPED, (14, 1403): Kind.SENTENCE,
    (14, 1404): Kind.TRANSLATION,
}  # None: a start, whose kind depends on Payload.Status
CONVERSATIONAL_AI = range(905, 910)


class EventError(Exception):
    """A body that is not a well-formed callback; ``field`` is the JSON path of the mistake."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Event:
    """One transcription callback, without any transcribed text.

    Times are integer milliseconds since the Unix epoch: ``callback_ts_ms`` when TRTC sent this
    delivery (retries get a new one), ``event_ms_ts`` when the event happened.
    """

    group: int
    type: int
    kind: Kind
    callback_ts_ms: int
    event_ms_ts: int
    task_id: str
    room_id: str
    room_id_type: int
    status: int | None = None  # Payload.Status of a start event
    robot_id: str | None = None  # 2.0 only

    @property
    def generation(self) -> str:
        """The API generation label (``ai_transcription``/``cloud_transcription``) of the event
        group."""
        return GENERATION[self.group]


@dataclass(frozen=True, slots=True)
class Ignored:
    """A well-formed envelope of a callback we do not act on (answered 200, counted)."""

    group: int
    type: int
    callback_ts_ms: int
    reason: str  # "conversational_ai" (905-909) or "unknown_event"


def parse_event(body: bytes) -> Event | Ignored:
    """Parse a raw callback body; raises only :class:`EventError`, naming the field."""
    doc = _load(body)
    group = _int(doc, "EventGroupId", "EventGroupId")
    etype = _int(doc, "EventType", "EventType")
    callback_ts = _millis(doc.get("CallbackTs"), "CallbackTs")
    info = doc.get("EventInfo")
    if not isinstance(info, dict):
        raise EventError("EventInfo", _expected("an object", info))
    if (group, etype) not in _KINDS:
        reason = ("conversational_ai" if group == GROUP_V1 and etype in CONVERSATIONAL_AI
                  else "unknown_event")
        return Ignored(group, etype, callback_ts, reason)
    return _event(group, etype, callback_ts, info)


def _event(group: int, etype: int, callback_ts: int, info: Mapping[str, Any]) -> Event:
    payload = info.get("Payload", {})
    if not isinstance(payload, dict):
        raise EventError("EventInfo.Payload", _expected("an object", payload))
    kind, status = _KINDS[(group, etype)], None
    if kind is None:
        status = payload.get("Status")
        if isinstance(status, bool) or status not in (0, 1):
            raise EventError("EventInfo.Payload.Status", f"must be 0 or 1, got {_brief(status)}")
        kind = Kind.STARTED if status == 0 else Kind.START_FAILED
    room_type = info.get("RoomIdType")
    if isinstance(room_type, bool) or room_type not in (0, 1):
        raise EventError("EventInfo.RoomIdType", f"must be 0 or 1, got {_brief(room_type)}")
    robot = info.get("RobotId")
    return Event(
        group=group, type=etype, kind=kind, callback_ts_ms=callback_ts,
        event_ms_ts=_millis(info.get("EventMsTs"), "EventInfo.EventMsTs"),
        task_id=_text(info.get("TaskId"), "EventInfo.TaskId", MAX_TASK_ID_CHARS),
        room_id=_room(info.get("RoomId"), room_type), room_id_type=room_type, status=status,
        robot_id=None if robot is None else _text(robot, "EventInfo.RobotId", MAX_ROBOT_ID_CHARS),
    )


def _load(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise EventError("body", f"larger than {MAX_BODY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        doc = load_json(text)
    except UnicodeDecodeError as exc:
        raise EventError("body", f"not UTF-8 (byte offset {exc.start})") from None
    except JsonError as exc:
        raise EventError("body", str(exc)) from None
    except RecursionError:
        raise EventError("body", "JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() of thousands of digits
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(
            exc, json.JSONDecodeError) else ""
        raise EventError("body", f"not valid JSON{where}") from None
    if not isinstance(doc, dict):
        raise EventError("body", _expected("a JSON object", doc))
    return doc


def _int(doc: Mapping[str, Any], key: str, field: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise EventError(field, _expected("an integer", value))
    return value


def _millis(value: object, field: str) -> int:
    """A millisecond timestamp given as a number or a string of digits (both occur in the docs)."""
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if (digits and len(str(value)) <= _MAX_DIGITS) or (
            isinstance(value, float) and value.is_integer()):
        value = int(value)  # type: ignore[call-overload]  # a str of digits or an integral float
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventError(field, _expected("milliseconds since 1970 (number or digits)", value))
    if not 0 < value < _MAX_MS:
        raise EventError(field, f"out of range, got {_brief(value)}")
    return value


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise EventError(field, _expected("a non-empty string", value))
    if len(value) > limit:
        raise EventError(field, f"longer than {limit} characters")
    problem = text_problem(value)  # the same characters refused as in config and the API
    if problem is not None:
        raise EventError(field, problem)
    return value


def _room(value: object, room_type: int) -> str:
    field = "EventInfo.RoomId"
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if value.bit_length() <= 64 else ""
    room = _text(value, field, MAX_ROOM_ID_BYTES)
    if len(room.encode("utf-8")) > MAX_ROOM_ID_BYTES:
        raise EventError(field, f"longer than {MAX_ROOM_ID_BYTES} bytes")
    if room_type == 0 and not (room.isascii() and room.isdigit()
                               and 1 <= int(room) <= MAX_NUMERIC_ROOM):
        raise EventError(field, f"must be a number 1-{MAX_NUMERIC_ROOM} when RoomIdType is 0")
    return room


def _expected(what: str, value: object) -> str:
    return f"must be {what}, got {type_name(value)}" + (
        f" {_brief(value)}" if isinstance(value, int | float | str) else "")


def _brief(value: object) -> str:
    """A safe, short rendering; long or odd strings are cut by :func:`validation.show`."""
    if isinstance(value, str) and not (is_text(value) and value.isprintable()):
        return "an unprintable string"
    return show(value)
