"""TRTC event callbacks for the simulator's tasks: the events, their bodies and signatures.

Facts (TRTC docs; checked with the search tool):
- "Conversational AI & Speech-to-Text Callbacks" (product 647, doc 66149) and "AI
  Transcription/Translation 2.0 Callback Event" (doc 80094; Chinese doc 129976, which lists the
  types): HTTP POST, UTF-8 JSON body ``{EventGroupId, EventType, CallbackTs (ms, when this
  delivery was sent), EventInfo: {EventMsTs (ms, when it happened), TaskId, RoomId, RoomIdType
  (0 numeric, 1 string), Payload}}``; headers ``Content-Type: application/json``, ``Sign``,
  ``SdkAppId``. 1.0 (AI service group 9): 901 started (``Payload.Status`` 0 started, 1 failed
  to start), 902 stopped, 903 one complete sentence. 2.0 (group 14, adds ``RobotId``): 1401
  EVENT_TYPE_CLOUD_TRANSCRIPTION_START, 1402 EVENT_TYPE_CLOUD_TRANSCRIPTION_STOP, 1403
  EVENT_TYPE_CLOUD_TRANSCRIPTION_ASR_MSG (a complete ASR sentence), 1404 ..._TRANSLATE_MSG.
- "Verify Signature Example" (doc 54912): ``Sign = base64(HMAC-SHA256(key, raw body))``; the key
  is up to 32 letters and digits, set per application in the console.
- Retries: no answer within 5 s is a failure; TRTC retries at once, then every 10 s until the
  message is one minute old (``sender.py`` does that).

Sentence events never carry what anybody said: their text is the placeholder ``"…"``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from trtc_exporter.simulator.tasks import Api

PLACEHOLDER_TEXT = "…"
"""Stands for a transcribed sentence: the simulator never makes up speech."""


class Kind(IntEnum):
    """What happened to a task; the event type per generation is in ``EVENT_TYPES``."""

    START = 1
    STOP = 2
    SENTENCE = 3


GROUPS: dict[Api, int] = {Api.AI: 9, Api.CLOUD: 14}
"""EventGroupId: AI service group (1.0) and the transcription group (2.0)."""

EVENT_TYPES: dict[Api, dict[Kind, int]] = {
    Api.AI: {Kind.START: 901, Kind.STOP: 902, Kind.SENTENCE: 903},
    Api.CLOUD: {Kind.START: 1401, Kind.STOP: 1402, Kind.SENTENCE: 1403},
}


@dataclass(frozen=True, slots=True)
class Event:
    """One callback event; ``at`` is the event time (epoch seconds)."""

    api: Api
    kind: Kind
    sdk_app_id: int
    task_id: str
    room_id: str
    at: float
    failed: bool = False  # a start that failed (Payload.Status 1)

    @property
    def event_type(self) -> int:
        """The TRTC EventType number of this kind for this API (901-904 for 1.0, 1401-1404 for
        2.0)."""
        return EVENT_TYPES[self.api][self.kind]

    def document(self, sent_at: float) -> dict[str, Any]:
        """The JSON body for a delivery sent at ``sent_at`` (epoch seconds)."""
        info: dict[str, Any] = {
            "EventMsTs": int(self.at * 1000),
            "TaskId": self.task_id,
            "RoomId": self.room_id,
            "RoomIdType": 0 if self.room_id.isdigit() else 1,
        }
        if self.api is Api.CLOUD:
            info["RobotId"] = f"sim_robot_{self.sdk_app_id}"
        info["Payload"] = self._payload()
        return {
            "EventGroupId": GROUPS[self.api],
            "EventType": self.event_type,
            "CallbackTs": int(sent_at * 1000),
            "EventInfo": info,
        }

    def _payload(self) -> dict[str, Any]:
        if self.kind is Kind.START:
            return {"Status": 1 if self.failed else 0}
        if self.kind is Kind.SENTENCE:
            return {"UserId": "sim_user", "Text": PLACEHOLDER_TEXT}
        return {}


def sign(key: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(key, body))`` over the raw body (doc 54912)."""
    digest = hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def encode(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the receiver must verify bytes it did not re-serialise."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def headers(sdk_app_id: int, body: bytes, key: str | None) -> dict[str, str]:
    """Request headers; ``Sign`` only when the app has a key (the console's key is optional)."""
    out = {"Content-Type": "application/json", "SdkAppId": str(sdk_app_id)}
    if key is not None:
        out["Sign"] = sign(key, body)
    return out
