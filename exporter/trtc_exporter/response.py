"""Parsing of Tencent Cloud API 3.0 answers into typed results, and the bounded error-code set.

Pure functions over bytes, so the parser can be fuzzed: whatever the server sends, the result is a
:class:`TaskStatus` or an :class:`ApiFailure`, never an exception.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from trtc_exporter.errors import is_text
from trtc_exporter.generations import STATES
from trtc_exporter.target import MAX_ID_CHARS

log = logging.getLogger(__name__)

UNKNOWN = "Unknown"
NOT_FOUND = "NotFound"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")

TRANSPORT_CODES = frozenset({"Timeout", "ConnectionError", "HTTP5xx", "InvalidResponse"})
KNOWN_CODES = frozenset({
    "AuthFailure.SignatureExpire", "AuthFailure.SignatureFailure", "AuthFailure.SecretIdNotFound",
    "AuthFailure.InvalidSecretId", "AuthFailure.InvalidAuthorization", "AuthFailure.TokenFailure",
    "AuthFailure.MFAFailure", "AuthFailure.UnauthorizedOperation", "UnauthorizedOperation",
    "FailedOperation", "FailedOperation.TaskNotExist", "ResourceNotFound",
    "InvalidParameter", "InvalidParameter.TaskId", "InvalidParameterValue", "MissingParameter",
    "UnknownParameter", "InvalidAction", "NoSuchVersion", "UnsupportedRegion",
    "UnsupportedOperation", "RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded",
    "RequestLimitExceeded.GlobalRegionUinLimitExceeded", "RequestLimitExceeded.IPLimitExceeded",
    "InternalError", "ServiceUnavailable", "ResourceUnavailable", "LimitExceeded",
}) | TRANSPORT_CODES
# Sub-codes of these families fold into the family name instead of Other, so alerts on a family
# (e.g. AuthFailure.*) still see codes Tencent adds later.
_FOLDED_FAMILIES = frozenset({"AuthFailure", "UnauthorizedOperation", "InternalError",
                              "ResourceNotFound", "RequestLimitExceeded", "InvalidParameter",
                              "InvalidParameterValue", "MissingParameter", "FailedOperation",
                              "LimitExceeded", "ResourceUnavailable", "UnsupportedOperation"})
NOT_FOUND_CODES = frozenset({"FailedOperation.TaskNotExist", "ResourceNotFound"})
THROTTLE_PREFIX = "RequestLimitExceeded"
_RETRYABLE = frozenset({"InternalError", "ServiceUnavailable", "ResourceUnavailable",
                        "AuthFailure.SignatureExpire"}) | TRANSPORT_CODES
_CODE_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)*$")


def bounded_code(code: str) -> str:
    """The label value for an error code: known codes as they are, anything else ``Other``."""
    if code in KNOWN_CODES:
        return code
    family = code.split(".", 1)[0]
    if family in _FOLDED_FAMILIES:
        return family
    return "Other"


def is_retryable(code: str) -> bool:
    """True for codes worth a retry (transport errors, throttling, ``InternalError*``, service
    unavailable, an expired signature after a skew correction)."""
    return code in _RETRYABLE or code.startswith((THROTTLE_PREFIX, "InternalError."))


def is_throttle(code: str) -> bool:
    """True for ``RequestLimitExceeded`` and its sub-codes."""
    return code.startswith(THROTTLE_PREFIX)


AUTH_PREFIXES = ("AuthFailure", "UnauthorizedOperation")


def is_auth_failure(code: str) -> bool:
    """AuthFailure* or UnauthorizedOperation*: the keys, their signature or their permissions
    are wrong, so every request of the account fails the same way until someone fixes them."""
    return code.startswith(AUTH_PREFIXES)


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """A successful answer: the state (one of the action's states, or Unknown) and its details."""

    status: str
    raw_status: str
    start_time: float | None
    task_id: str
    session_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class ApiFailure:
    """A failed attempt: Tencent ``Error.Code`` or a transport code; message is for logs only."""

    code: str
    message: str
    request_id: str = ""

    @property
    def retryable(self) -> bool:
        """True when the failure's code is worth a retry (:func:`is_retryable`)."""
        return is_retryable(self.code)


def parse_response(action: str, body: bytes) -> TaskStatus | ApiFailure:
    """Turn an HTTP 200 body into a result; malformed bodies become InvalidResponse."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return ApiFailure("InvalidResponse", "body is not JSON")
    response = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        return ApiFailure("InvalidResponse", "no Response object")
    request_id = _text(response.get("RequestId"))
    error = response.get("Error")
    if error is not None:
        return _failure(error, request_id)
    raw_status = response.get("Status")
    if not isinstance(raw_status, str):
        return ApiFailure("InvalidResponse", "Status missing or not a string", request_id)
    return TaskStatus(
        status=normalise_status(action, raw_status),
        raw_status=raw_status,
        start_time=parse_start_time(response.get("StartTime")),
        task_id=_text(response.get("TaskId")),
        session_id=_text(response.get("SessionId")),
        request_id=request_id,
    )


def _failure(error: object, request_id: str) -> ApiFailure:
    if not isinstance(error, dict) or not isinstance(error.get("Code"), str):
        return ApiFailure("InvalidResponse", "Error without a Code", request_id)
    code = error["Code"]
    if not _CODE_SHAPE.match(code) or len(code) > 100:
        return ApiFailure("InvalidResponse", "Error.Code is not a code", request_id)
    message = error.get("Message")
    text = message[:500] if isinstance(message, str) else ""
    return ApiFailure(code, text if is_text(text) else "(message is not valid Unicode)",
                      request_id)


def _text(value: object, limit: int = MAX_ID_CHARS) -> str:
    """A string field of the answer; "" when absent, not valid Unicode or longer than ``limit``
    (a cut id would be a wrong id, and a 3 000-character label fails the whole scrape)."""
    if not isinstance(value, str) or len(value) > limit or not is_text(value):
        return ""
    return value


_warned_statuses: set[str] = set()
_CANONICAL = {status: status for states in STATES.values() for status in states}
"""Each known status, to itself: the record keeps this one string instead of the answer's own
copy (10 000 targets hold the same few values; issue 16)."""


def normalise_status(action: str, raw: str) -> str:
    """Known states pass through (as the one shared string of that state); anything else is
    Unknown, logged once per distinct value."""
    if raw in STATES.get(action, ()):
        return _CANONICAL[raw]
    if len(_warned_statuses) < 100 and raw not in _warned_statuses:
        _warned_statuses.add(raw)
        log.warning("unknown task status %r from %s; shown as Unknown", raw[:64], action)
    return UNKNOWN


_START_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?")


def parse_start_time(value: object) -> float | None:
    """Epoch seconds from StartTime.

    1.0 sends ``"2025-04-24 16:17:56.931660"`` without a zone; we read it as Beijing time (UTC+8),
    the zone of the service's console and examples. 2.0 sends an integer epoch (seconds; values
    beyond year 5000 are taken as milliseconds). Empty, zero or unparsable → None.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if value <= 0 or value != value:
            return None
        return float(value) / 1000.0 if value > 95_617_584_000 else float(value)
    if not isinstance(value, str):
        return None
    # a running task answers the same StartTime at every poll: the last 1 024 distinct strings
    # are kept (the datetime arithmetic was 3 % of a request's CPU: issue 16, goal 5); only
    # strings of the API's length, so an odd answer cannot fill memory (1 MiB bodies)
    if len(value) <= _CACHED_START_CHARS:
        return _parse_start_cached(value)
    return _parse_start_text(value)


_CACHED_START_CHARS = 40  # "2025-04-24 16:17:56.931660" is 26


def _parse_start_text(value: str) -> float | None:
    if not value.strip():
        return None
    text = value.strip()
    match = _START_TIME.fullmatch(text)
    if match is not None:  # the form the API sends, without strptime's cost (a poll's largest)
        year, month, day, hour, minute, second, fraction = match.groups()
        try:
            return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                            int((fraction or "0").ljust(6, "0")), BEIJING).timestamp()
        except ValueError:
            return None
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=BEIJING).timestamp()
        except ValueError:
            continue
    return None


_parse_start_cached = functools.lru_cache(maxsize=1024)(_parse_start_text)
