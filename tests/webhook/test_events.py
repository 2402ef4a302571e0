"""The callback body parser: every documented type, every malformed field, and fuzzing."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.webhook.helpers import body
from trtc_exporter.webhook.events import (
    MAX_BODY_BYTES,
    Event,
    EventError,
    Ignored,
    Kind,
    parse_event,
)


def _event(raw: bytes) -> Event:
    parsed = parse_event(raw)
    assert isinstance(parsed, Event)
    return parsed


@pytest.mark.parametrize(("group", "etype", "status", "kind"), [
    (9, 901, 0, Kind.STARTED), (9, 901, 1, Kind.START_FAILED), (9, 902, None, Kind.STOPPED),
    (9, 903, None, Kind.SENTENCE), (9, 904, None, Kind.SENTENCE_START),
    (14, 1401, 0, Kind.STARTED), (14, 1401, 1, Kind.START_FAILED), (14, 1402, None, Kind.STOPPED),
    (14, 1403, None, Kind.SENTENCE), (14, 1404, None, Kind.TRANSLATION),
])
def test_documented_types_parse(group: int, etype: int, status: int | None, kind: Kind) -> None:
    """Each documented 1.0 and 2.0 event type maps to its kind, start status included."""
    payload = {"Status": status} if status is not None else {}
    event = _event(body(group, etype, payload=payload))
    assert (event.kind, event.status, event.group, event.type) == (kind, status, group, etype)
    assert event.generation == ("ai_transcription" if group == 9 else "cloud_transcription")


def test_fields_are_taken_and_event_time_accepts_strings() -> None:
    """Ids and times are copied; a string EventMsTs (as the 1.0 table types it) is accepted."""
    event = _event(body(14, 1401, task="t-9", event_ms="1795500000900", callback_ms=1795500000999,
                        RoomId="room-a", RoomIdType=1, RobotId="robot_1"))
    assert (event.task_id, event.room_id, event.room_id_type, event.robot_id) == (
        "t-9", "room-a", 1, "robot_1")
    assert (event.event_ms_ts, event.callback_ts_ms) == (1795500000900, 1795500000999)


def test_a_numeric_room_id_may_be_a_json_number() -> None:
    """RoomId 1234 as a number is read as the string "1234"."""
    assert _event(body(RoomId=1234)).room_id == "1234"


def test_the_transcript_is_never_copied() -> None:
    """A sentence's Payload text appears nowhere in the parsed event."""
    secret_words = "the launch code is swordfish"
    event = _event(body(9, 903, payload={"Text": secret_words, "TranslationText": secret_words,
                                         "UserId": "u1", "StartTimeMs": 1, "EndTimeMs": 2}))
    assert "swordfish" not in repr(event)
    assert not any("swordfish" in str(getattr(event, f)) for f in event.__slots__)


@pytest.mark.parametrize(("group", "etype", "reason"), [
    (9, 905, "conversational_ai"), (9, 909, "conversational_ai"), (9, 910, "unknown_event"),
    (1, 103, "unknown_event"), (14, 1405, "unknown_event"), (15, 1501, "unknown_event"),
])
def test_other_types_are_ignored(group: int, etype: int, reason: str) -> None:
    """Conversational AI and unknown types are a distinct Ignored result, not an error."""
    parsed = parse_event(body(group, etype, payload={"Anything": [1, 2]}))
    assert parsed == Ignored(group, etype, 1_795_500_000_000, reason)


def _mutated(path: list[str], value: Any) -> bytes:
    doc = json.loads(body())
    target = doc
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc).encode()


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "message"), [
    (["EventGroupId"], "9", "EventGroupId: must be an integer, got string '9'"),
    (["EventType"], _DELETE, "EventType: must be an integer, got null"),
    (["EventType"], True, "EventType: must be an integer, got boolean true"),
    (["CallbackTs"], -5, "CallbackTs: out of range, got -5"),
    (["CallbackTs"], "12ab", "CallbackTs: must be milliseconds since 1970 (number or digits), "
                             "got string '12ab'"),
    (["EventInfo"], [], "EventInfo: must be an object, got list"),
    (["EventInfo", "TaskId"], "", "EventInfo.TaskId: must be a non-empty string, got string ''"),
    (["EventInfo", "TaskId"], "x" * 257, "EventInfo.TaskId: longer than 256 characters"),
    (["EventInfo", "TaskId"], "a\nb", "EventInfo.TaskId: contains the control character "
                                      "U+000A"),
    (["EventInfo", "TaskId"], "a\u202eb", "EventInfo.TaskId: contains the bidirectional "
                                          "control U+202E"),
    (["EventInfo", "RobotId"], "r\x00", "EventInfo.RobotId: contains the control character "
                                        "U+0000"),
    (["EventInfo", "TaskId"], "a\ud800", "EventInfo.TaskId: must be valid Unicode text (found "
                                         "a lone surrogate)"),
    (["EventInfo", "EventMsTs"], 1e300, "EventInfo.EventMsTs: out of range, got a huge integer"),
    (["EventInfo", "RoomIdType"], 2, "EventInfo.RoomIdType: must be 0 or 1, got 2"),
    (["EventInfo", "RoomId"], "abc", "EventInfo.RoomId: must be a number 1-4294967294 when "
                                     "RoomIdType is 0"),
    (["EventInfo", "RoomId"], "9" * 65, "EventInfo.RoomId: longer than 64 characters"),
    (["EventInfo", "Payload"], "x", "EventInfo.Payload: must be an object, got string 'x'"),
    (["EventInfo", "Payload", "Status"], 2, "EventInfo.Payload.Status: must be 0 or 1, got 2"),
    (["EventInfo", "Payload", "Status"], _DELETE,
     "EventInfo.Payload.Status: must be 0 or 1, got null"),
    (["EventInfo", "RobotId"], 7, "EventInfo.RobotId: must be a non-empty string, got integer 7"),
])
def test_malformed_fields_are_named(path: list[str], value: Any, message: str) -> None:
    """Each mistake raises EventError whose message starts with the field's JSON path."""
    with pytest.raises(EventError) as caught:
        parse_event(_mutated(path, value))
    assert str(caught.value) == message


def test_a_string_room_counts_bytes() -> None:
    """A string room id of 22 three-byte characters (66 bytes) is over the 64-byte limit."""
    with pytest.raises(EventError, match="RoomId: longer than 64 bytes"):
        parse_event(body(RoomId="房" * 22, RoomIdType=1))


@pytest.mark.parametrize(("raw", "message"), [
    (b"\xff{}", "body: not UTF-8 (byte offset 0)"),
    (b"{", "body: not valid JSON at line 1 column 2"),
    (b"[]", "body: must be a JSON object, got list"),
    (b'{"CallbackTs": NaN}', "body: NaN is not a JSON number"),
    (b'{"a": 1, "a": 2}', "body: key 'a' appears twice in one object"),
    (b"[" * 100_00 + b"]" * 100_00, "body: JSON nested too deeply"),
    (b'{"EventGroupId": ' + b"9" * 5000 + b"}", "body: not valid JSON"),
    (b" " * (MAX_BODY_BYTES + 1), f"body: larger than {MAX_BODY_BYTES} bytes"),
])
def test_unreadable_bodies_are_body_errors(raw: bytes, message: str) -> None:
    """Undecodable, non-JSON, ambiguous, deep, huge-number and oversized bodies name `body`."""
    with pytest.raises(EventError) as caught:
        parse_event(raw)
    assert str(caught.value) == message


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children,
                                                                       max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_only_raise_event_error(raw: bytes) -> None:
    """Whatever the bytes, parse_event returns a result or raises EventError, nothing else."""
    with contextlib.suppress(EventError):
        parse_event(raw)


@settings(max_examples=300, deadline=None)
@given(_json, st.sampled_from([(9, 901), (9, 903), (14, 1401), (14, 1402), (9, 907)]))
def test_random_json_in_any_field_only_raises_event_error(value: Any,
                                                           kind: tuple[int, int]) -> None:
    """Random JSON put into each field of a valid callback never raises anything but EventError."""
    for path in (["EventInfo", "TaskId"], ["EventInfo", "RoomId"], ["EventInfo", "EventMsTs"],
                 ["EventInfo", "Payload"], ["EventInfo"], ["CallbackTs"], ["EventInfo", "RobotId"],
                 ["EventInfo", "RoomIdType"], ["EventInfo", "Payload", "Status"]):
        doc = json.loads(body(*kind))
        target = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        try:
            result = parse_event(json.dumps(doc).encode())
        except EventError as exc:
            assert exc.field.startswith(("EventInfo", "CallbackTs", "body"))
        else:
            assert isinstance(result, Event | Ignored)


@settings(max_examples=200, deadline=None)
@given(_json)
def test_random_json_documents_only_raise_event_error(value: Any) -> None:
    """Any JSON document at all gives a result or an EventError."""
    with contextlib.suppress(EventError):
        parse_event(json.dumps(value).encode())
