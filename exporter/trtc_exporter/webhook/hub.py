"""One callback request end to end, apart from HTTP: judge it, relay it, apply it, count it.

The listener (``web/webhook.py``) reads the request and calls :meth:`WebhookHub.handle`; the
answer goes back to TRTC right after, so everything here is local and quick (a SQLite insert for
the relay, an in-memory change for the effect). Counters are plain data read by the collector
through :meth:`WebhookHub.stats`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from trtc_exporter.clock import Clock
from trtc_exporter.webhook.dedupe import Deduper
from trtc_exporter.webhook.dispatch import Relay, dispatch
from trtc_exporter.webhook.effects import EffectSink
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.receiver import RESULTS, Outcome, Receiver, refusal, replay_window

log = logging.getLogger(__name__)
VERIFIED = frozenset({"applied", "duplicate", "conversational_ai", "unknown_event"})
"""Results of callbacks that passed every check (they count as a sign of life from TRTC)."""
UNAVAILABLE = "the exporter cannot apply this callback now (its target store is unreachable); retry"


@dataclass(frozen=True, slots=True)
class WebhookStats:
    """Requests by result since start (every result of ``RESULTS`` present, plus ``timeout``
    and ``bad_request`` from the listener), and the Unix time of the last verified callback
    (the listener's start time before the first)."""

    requests: Mapping[str, int]
    last_event_time: float


class WebhookHub:
    """Thread-safe; ``set_keys`` swaps the keys and ``max_age`` on reload (dedupe memory kept)."""

    LISTENER_RESULTS = ("timeout", "bad_request")

    def __init__(self, keys: KeyRing, sink: EffectSink, clock: Clock, *, max_age: float,
                 relay: Relay | None = None) -> None:
        self._clock, self._sink, self._relay = clock, sink, relay
        self._deduper = Deduper(clock, ttl=replay_window(max_age))
        self._receiver = Receiver(keys, self._deduper, max_age=max_age)
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(RESULTS + self.LISTENER_RESULTS, 0)
        self._last_event: float = clock.time()

    def set_keys(self, keys: KeyRing, max_age: float) -> None:
        """Use new keys and a new ``webhook.max_age`` from now on (a reload); the dedupe memory
        follows the new acceptance window."""
        self._deduper.set_ttl(replay_window(max_age))
        self._receiver = Receiver(keys, self._deduper, max_age=max_age)

    def handle(self, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Judge, relay and apply one request; never raises."""
        now = self._clock.time()
        outcome = self._receiver.handle(headers, body, now)
        verified = outcome.result in VERIFIED  # an unavailable store does not make it less so
        if verified:
            if not dispatch(outcome, headers, body, self._sink, self._relay):
                self._receiver.forget(outcome)
                outcome = refusal(503, "unavailable", UNAVAILABLE, outcome.app)
        elif outcome.status >= 400:
            log.debug("webhook request refused (%s): %s", outcome.result,
                      outcome.body.decode(errors="replace"))
        self._count(outcome.result, verified=verified, now=now)
        return outcome

    def refuse(self, status: int, result: str, message: str) -> Outcome:
        """Count and build a refusal decided by the listener before the body was read
        (``too_large``, ``timeout``, ``bad_request``)."""
        self._count(result, verified=False, now=self._clock.time())
        return refusal(status, result, message)

    def _count(self, result: str, *, verified: bool, now: float) -> None:
        with self._lock:
            self._counts[result] = self._counts.get(result, 0) + 1
            if verified:
                self._last_event = now

    def stats(self) -> WebhookStats:
        """A snapshot of the counters."""
        with self._lock:
            return WebhookStats(dict(self._counts), self._last_event)
