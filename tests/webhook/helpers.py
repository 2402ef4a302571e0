"""Builders of signed TRTC callbacks for the webhook tests (the role of TRTC's sender)."""

from __future__ import annotations

import json
from typing import Any

from trtc_exporter.secret import Secret
from trtc_exporter.webhook.verify import sign

KEY = Secret("ExampleCallbackKey0123456789abcd")
APP = 1400123456
NOW = 1_795_500_000.0  # Unix seconds the tests pretend it is


def body(group: int = 9, etype: int = 901, task: str = "task-1", event_ms: int | str = 0,
         callback_ms: int | None = None, payload: dict[str, Any] | None = None,
         **info: Any) -> bytes:
    """A compact callback body; times default to NOW."""
    event_info: dict[str, Any] = {
        "EventMsTs": event_ms or int(NOW * 1000) - 20, "TaskId": task, "RoomId": "1234",
        "RoomIdType": 0, "Payload": {"Status": 0} if payload is None else payload, **info}
    doc = {"EventGroupId": group, "EventType": etype,
           "CallbackTs": callback_ms if callback_ms is not None else int(NOW * 1000),
           "EventInfo": event_info}
    return json.dumps(doc).encode()


def headers(raw: bytes, app: int | str = APP, key: Secret = KEY) -> dict[str, str]:
    return {"Content-Type": "application/json", "SdkAppId": str(app), "Sign": sign(key, raw)}
