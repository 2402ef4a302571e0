"""The request-handling core of ``POST /webhook/trtc``, independent of any HTTP server.

``Receiver.handle(headers, body, now)`` checks, in this order: body size, the ``SdkAppId``
header, the app's key, the ``Sign`` header, the JSON body, the ``CallbackTs`` age, duplicates.
Each refusal changes nothing and has its own ``result`` label for
``trtc_exporter_webhook_requests_total{result}``:

=================  ======  ==================================================================
result             status  meaning
=================  ======  ==================================================================
applied            200     a new event; ``effect`` (possibly None for 904/1404) to apply
duplicate          200     the same (app, type, task, EventMsTs) within 10 minutes
conversational_ai  200     905-909, conversational AI events: not ours, counted
unknown_event      200     another group/type (TRTC may add some): counted, changes nothing
too_large          413     body over 64 KiB
bad_app            400     ``SdkAppId`` header missing or not an SdkAppId
unknown_app        403     no key for this app and unsigned callbacks are not allowed
unsigned           401     no ``Sign`` header while a key is configured for the app
bad_signature      403     ``Sign`` malformed or made with another key / over another body
bad_json           400     not UTF-8 JSON
malformed          400     JSON, but a field is missing or wrong (the message names it)
stale              400     ``CallbackTs`` older than ``max_age``
future             400     ``CallbackTs`` more than ``max_future`` ahead of our clock
=================  ======  ==================================================================

TRTC expects a 200 within 5 s and ignores the body; ``{"code":0}`` is its recommended answer
(doc 66149, "Event Callback Message Format"). Unknown event types get a 200 so that TRTC does
not retry them for a minute.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from trtc_exporter.webhook.dedupe import DEFAULT_TTL, Deduper
from trtc_exporter.webhook.effects import Effect, effect_of
from trtc_exporter.webhook.events import MAX_BODY_BYTES, Event, EventError, Ignored, parse_event
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.verify import Verdict, verify

RESULTS = ("applied", "duplicate", "conversational_ai", "unknown_event", "too_large", "bad_app",
           "unknown_app", "unsigned", "bad_signature", "bad_json", "malformed", "stale", "future",
           "unavailable")
DEFAULT_MAX_AGE = 600.0
DEFAULT_MAX_FUTURE = 300.0  # clocks disagree by seconds; minutes ahead means a forged or bad time
MAX_SDK_APP_ID = 2**64 - 1
_OK = b'{"code":0}'


def replay_window(max_age: float, max_future: float = DEFAULT_MAX_FUTURE) -> float:
    """Seconds one body passes the age check: from ``max_future`` before its ``CallbackTs`` to
    ``max_age`` after it. The de-duplication memory must last this long (at least its own
    10-minute default), or a replay inside the window would be applied again."""
    return max(DEFAULT_TTL, max_age + max_future)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to answer and what to do.

    ``forward`` is true for a verified, first-seen callback: relay it to ``webhook.forward_to``
    (duplicates are not relayed again, as TRTC would not re-deliver what was answered 200).
    """

    status: int
    body: bytes
    result: str
    app: int | None = None
    event: Event | None = None
    effect: Effect | None = None
    forward: bool = False


class Receiver:
    """Stateless apart from the de-duplication set; safe to call from many threads."""

    def __init__(self, keys: KeyRing, deduper: Deduper, *, max_age: float = DEFAULT_MAX_AGE,
                 max_future: float = DEFAULT_MAX_FUTURE) -> None:
        self._keys, self._dedupe = keys, deduper
        self._max_age, self._max_future = max_age, max_future

    def handle(self, headers: Mapping[str, str], body: bytes, now: float) -> Outcome:
        """Judge one request. ``headers``: name → value (any case); ``body``: the raw bytes as
        received; ``now``: Unix seconds. Never raises for any input."""
        if len(body) > MAX_BODY_BYTES:
            return _refuse(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
        lower = {name.lower(): value for name, value in headers.items()}
        app = _app_id(lower.get("sdkappid"))
        if app is None:
            return _refuse(400, "bad_app", "SdkAppId header missing or not an SdkAppId")
        refusal = self._check_sign(app, lower.get("sign"), body)
        if refusal is not None:
            return refusal
        try:
            parsed = parse_event(body)
        except EventError as exc:
            result = "bad_json" if exc.field == "body" else "malformed"
            return _refuse(400, result, str(exc), app)
        refusal = self._check_age(parsed.callback_ts_ms / 1000.0, now, app)
        if refusal is not None:
            return refusal
        if isinstance(parsed, Ignored):
            return Outcome(200, _OK, parsed.reason, app, forward=True)
        return self._accept(parsed, app)

    def _check_sign(self, app: int, header: str | None, body: bytes) -> Outcome | None:
        key = self._keys.key_for(app)
        if key is None:
            if self._keys.allow_unsigned:
                return None
            return _refuse(403, "unknown_app", f"no callback key configured for app {app}", app)
        verdict = verify(key, body, header)
        if verdict is Verdict.VALID:
            return None
        if verdict is Verdict.MISSING:
            if self._keys.allow_unsigned:
                return None
            return _refuse(401, "unsigned", "Sign header missing", app)
        return _refuse(403, "bad_signature", "Sign does not match the body", app)

    def _check_age(self, sent: float, now: float, app: int) -> Outcome | None:
        if now - sent > self._max_age:
            return _refuse(400, "stale", f"CallbackTs is {now - sent:.0f}s old "
                                         f"(limit {self._max_age:.0f}s)", app)
        if sent - now > self._max_future:
            return _refuse(400, "future", f"CallbackTs is {sent - now:.0f}s in the future "
                                          f"(limit {self._max_future:.0f}s)", app)
        return None

    def forget(self, outcome: Outcome) -> None:
        """The outcome's event could not be applied (see ``EffectSink.apply``): forget it, so
        TRTC's next delivery of it is applied, not taken for a duplicate."""
        if outcome.event is not None and outcome.app is not None:
            self._dedupe.forget(_dedupe_key(outcome.event, outcome.app))

    def _accept(self, event: Event, app: int) -> Outcome:
        key = _dedupe_key(event, app)
        if not self._dedupe.first_time(key):
            return Outcome(200, _OK, "duplicate", app, event)
        return Outcome(200, _OK, "applied", app, event, effect_of(event, app), forward=True)


def _dedupe_key(event: Event, app: int) -> tuple[int, int, str, int]:
    """Tencent's advice (see :mod:`dedupe`): app, event type, task id and ``EventMsTs``."""
    return (app, event.type, event.task_id, event.event_ms_ts)


def _app_id(value: str | None) -> int | None:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 20:
        return None
    number = int(text)
    return number if 1 <= number <= MAX_SDK_APP_ID else None


def refusal(status: int, result: str, message: str, app: int | None = None) -> Outcome:
    """A refusal: JSON ``{"code": <status>, "error": <message>}`` (messages never quote the
    transcript), nothing to apply or relay."""
    body = json.dumps({"code": status, "error": message}).encode()
    return Outcome(status, body, result, app)


_refuse = refusal
