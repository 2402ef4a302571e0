"""The API 3.0 response envelope and the wording of the errors the simulator answers.

Messages follow the real API where we know its text (RequestLimitExceeded, SignatureFailure,
SignatureExpire); clients must never branch on them, but humans read them in logs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import Any

JSON_CONTENT_TYPE = "application/json"
"""Plain, no charset: the SDK only parses bodies whose Content-Type is exactly this."""

BEIJING = timezone(timedelta(hours=8))


class Transport(Enum):
    """How the server puts a result on the wire."""

    NORMAL = "normal"
    RESET = "reset"
    TRICKLE = "trickle"


@dataclass(frozen=True, slots=True)
class ApiResult:
    """Everything the HTTP layer needs to answer one request, decided without doing any I/O."""

    status: int
    body: bytes
    code: str
    content_type: str = JSON_CONTENT_TYPE
    delay: float = 0.0
    transport: Transport = Transport.NORMAL
    trickle_chunk: int = 0
    trickle_interval: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    """An API-level error: answered with HTTP 200 and ``Response.Error``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def request_id() -> str:
    """A fresh RequestId shaped like the real ones (uuid4)."""
    return str(uuid.uuid4())


def encode(payload: object) -> bytes:
    """Compact JSON with raw UTF-8, as the API sends it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def ok(fields: dict[str, Any]) -> ApiResult:
    """A success envelope; ``fields`` are kept for body-mangling faults."""
    body = dict(fields)
    body["RequestId"] = request_id()
    return ApiResult(status=200, body=encode({"Response": body}), code="Success", fields=body)


def error(code: str, message: str) -> ApiResult:
    """An error envelope (HTTP 200, as the API does)."""
    payload = {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id()}}
    return ApiResult(status=200, body=encode(payload), code=code)


def from_error(exc: ApiError) -> ApiResult:
    """The error envelope of a raised :class:`ApiError`."""
    return error(exc.code, exc.message)


def beijing_time(epoch: float) -> str:
    """1.0 ``StartTime``: ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC+8 without a zone suffix."""
    return datetime.fromtimestamp(epoch, tz=BEIJING).strftime("%Y-%m-%d %H:%M:%S.%f")


def html_error(status: int) -> ApiResult:
    """What a gateway in front of the API sends when it fails: HTML, not the JSON envelope."""
    reason = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}[status]
    page = (
        f"<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {reason}</h1></center>\r\n<hr><center>stgw</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return ApiResult(
        status=status, body=page.encode(), code=f"http_{status}", content_type="text/html"
    )


def missing(name: str) -> ApiError:
    """``MissingParameter`` for the parameter ``name``, worded as the API words it."""
    return ApiError("MissingParameter", f"The request is missing a required parameter `{name}`.")


def invalid(name: str, problem: str) -> ApiError:
    """``InvalidParameter`` for ``name``; ``problem`` completes the sentence ("must be …")."""
    return ApiError("InvalidParameter", f"The parameter `{name}` {problem}.")


def unknown_parameter(name: str) -> ApiError:
    """``UnknownParameter`` for a parameter the action does not take."""
    return ApiError("UnknownParameter", f"The parameter `{name}` is not recognized.")


def task_not_exist() -> ApiError:
    """``FailedOperation.TaskNotExist``: the TaskId is unknown or the task has gone."""
    return ApiError("FailedOperation.TaskNotExist", "The task does not exist.")


PLAIN_LIMIT_MESSAGE = "Too many requests. Please try again later."
"""The ``limit_message: plain`` form: a server that states no numbers (issue 15 item 12)."""


def limit_exceeded(seen: int, limit: int, language: str, plain: bool = False) -> ApiError:
    """The real message forms (English, and Chinese for the SDK's default zh-CN).

    ``plain`` gives a message without numbers, so a client cannot learn the limit from it.
    """
    if plain:
        return ApiError("RequestLimitExceeded", PLAIN_LIMIT_MESSAGE)
    if language == "zh-CN":
        # The observed zh-CN text, full-width commas included.
        text = f"您当前每秒请求 `{seen}` 次，超过了每秒频率上限 `{limit}`，请稍后重试。"  # noqa: RUF001
    else:
        text = (
            f"Your current request times equals to `{seen}` in a second, which exceeds the "
            f"frequency limit `{limit}` for a second. Please reduce the frequency of calls."
        )
    return ApiError("RequestLimitExceeded", text)


def signature_expired(server_time: float) -> ApiError:
    """``AuthFailure.SignatureExpire`` stating the server time (Unix s), as the API does; the
    exporter's skew estimate reads it."""
    return ApiError(
        "AuthFailure.SignatureExpire",
        "Signature expired. Please use local time and enable NTP service for time "
        "synchronization to avoid a deviation between `Timestamp` and the server time "
        f"{int(server_time)}.",
    )


def signature_failure() -> ApiError:
    """``AuthFailure.SignatureFailure``: the TC3 signature does not match."""
    return ApiError(
        "AuthFailure.SignatureFailure",
        "The provided credentials could not be validated. Please check your signature is correct.",
    )


def internal_error() -> ApiError:
    """``InternalError``, as the API answers a failure of its own."""
    return ApiError("InternalError", "Internal error.")
