"""The TRTC API client: signs, sends and parses, one budget token per attempt, retries included.

It is the only code that talks to Tencent. Every attempt is timed and counted here (our own
instrumentation, not a patched library), and every attempt, first or retry, waits for a token from
the shared budget first: the budget is the one rule nothing may bypass.
"""

from __future__ import annotations

import logging
import random
import threading
from urllib.parse import urlsplit

from trtc_exporter import __version__
from trtc_exporter.api import signing, transport
from trtc_exporter.api.budget import Budget, Cancelled, hint_from_message
from trtc_exporter.api.credentials import CredentialProvider
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.clock import Clock
from trtc_exporter.metrics import ApiMetrics
from trtc_exporter.response import ApiFailure, TaskStatus, bounded_code, is_throttle, parse_response
from trtc_exporter.target import Target

log = logging.getLogger("trtc_exporter.client")  # caller= stays as before
VERSION = "2019-07-22"


def host_of(endpoint: str) -> str:
    """The signed Host: the endpoint's host, with the port only when it is not the default."""
    parts = urlsplit(endpoint)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


class TrtcClient:
    """The TRTC API client: ``describe(target)`` polls one target and returns an :class:`Outcome`.

    Every attempt (retries included, at most ``max_retries`` more) first takes a token from
    ``budget``; ``timeout`` is the per-attempt limit in seconds. Times every attempt
    into ``metrics`` and feeds the response ``Date`` header to ``skew``. ``http`` sends (default:
    a :class:`~trtc_exporter.api.transport.HttpTransport` for ``endpoint``, shared by its threads).
    """

    def __init__(self, *, endpoint: str, credentials: CredentialProvider, budget: Budget,
                 metrics: ApiMetrics, clock: Clock, timeout: float = 6.0, max_retries: int = 2,
                 skew: SkewEstimator | None = None, http: transport.Transport | None = None,
                 rng: random.Random | None = None) -> None:
        self._url = endpoint.rstrip("/") + "/"
        self._host = host_of(endpoint)
        self._credentials = credentials
        self._budget = budget
        self._metrics = metrics
        self._clock = clock
        self._timeout = timeout
        self._max_retries = max_retries
        self._skew = skew or SkewEstimator()
        self._http = http or transport.HttpTransport(endpoint)
        self._rng = rng or random.Random()

    @property
    def metrics(self) -> ApiMetrics:
        """The client's self-instrumentation (requests, latency, token waits), per account."""
        return self._metrics

    @property
    def skew(self) -> SkewEstimator:
        """The clock-skew estimate learnt from the API's ``Date`` headers and SignatureExpire
        answers."""
        return self._skew

    def set_credentials(self, credentials: CredentialProvider) -> None:
        """Use these credentials from the next attempt on (reload)."""
        self._credentials = credentials

    def describe(self, target: Target, cancel: threading.Event | None = None) -> Outcome:
        """Poll one target, retrying retryable failures within max_retries, each with a token."""
        body = target.body
        attempts, total = 0, 0.0
        while True:
            attempts += 1
            result, latency = self._attempt(target.action, target.region, body, cancel,
                                             target.lane)
            total += latency
            if not isinstance(result, ApiFailure) or not self._should_retry(result, attempts,
                                                                            cancel):
                return Outcome(result, attempts, total)
            self._metrics.retries.labels(target.action, target.region).inc()
            self._clock.wait(cancel or threading.Event(), self._backoff(attempts, result))

    def _should_retry(self, result: ApiFailure, attempts: int,
                      cancel: threading.Event | None) -> bool:
        if not result.retryable:
            return False
        if cancel is not None and cancel.is_set():
            return False
        limit = 1 if result.code == "AuthFailure.SignatureExpire" else self._max_retries
        return attempts <= limit

    def _backoff(self, attempts: int, result: ApiFailure) -> float:
        """Full jitter: throttling waits longer, because the window has to roll over."""
        base = 1.0 if is_throttle(result.code) else 0.2
        return self._rng.uniform(0, base * 2 ** (attempts - 1))

    def _attempt(self, action: str, region: str, body: bytes, cancel: threading.Event | None,
                  lane: str = "") -> tuple[TaskStatus | ApiFailure, float]:
        """One attempt; ``lane`` names the limiter (``Target.lane``: the action, per account)."""
        lane = lane or action
        headers = self._headers(action, region, body)  # signed first: nothing slow after the token
        limiter = self._budget.limiter(lane)
        try:
            waited = limiter.acquire(cancel)
        except Cancelled:
            return ApiFailure("Cancelled", "shutting down before a token was granted"), 0.0
        # latency from the injected clock, so a FakeClock makes the histogram reproducible
        sent_wall, started = self._clock.time(), self._clock.monotonic()
        try:  # the limiter counts the next window from the write, not from the grant
            with transport.on_written(limiter.sent):
                result, date = self._send(action, body, headers)
        finally:
            limiter.sent()  # not reported by our connection (an error before the write): now
        self._metrics.budget_wait.labels(action).observe(waited)
        latency = self._clock.monotonic() - started
        self._metrics.requests.labels(action, region).inc()
        self._metrics.duration.labels(action, region).observe(latency)
        self._skew.observe(date, sent_wall, sent_wall + latency)
        if isinstance(result, ApiFailure):
            self._count_failure(action, region, result, lane, started)
        if not isinstance(result, ApiFailure) or (result.request_id
                                                   and not is_throttle(result.code)):
            self._budget.limiter(lane).on_accepted(started)  # the server counted it
        return result, latency

    def _count_failure(self, action: str, region: str, failure: ApiFailure, lane: str,
                       sent_at: float) -> None:
        self._metrics.errors.labels(action, region, bounded_code(failure.code)).inc()
        if is_throttle(failure.code):
            self._metrics.throttled.labels(action, region).inc()
            hint = hint_from_message(failure.message)
            limiter = self._budget.limiter(lane)
            if limiter.on_throttled(hint.limit, hint.marginal, sent_at=sent_at):
                stated = ("no limit stated" if hint.limit is None
                          else f"{hint.seen} of limit {hint.limit} counted")
                log.warning("API throttled %s (RequestLimitExceeded: %s); effective rate now "
                            "%.1f/s, window guard %.0f ms", lane, stated,
                            limiter.effective_rate, limiter.guard * 1000)

    def _headers(self, action: str, region: str, body: bytes) -> dict[str, str]:
        creds = self._credentials.get()
        timestamp = int(self._clock.time())
        parts = signing.sign(secret_id=creds.secret_id.reveal(),
                             secret_key=creds.secret_key.reveal(),
                             host=self._host, payload=body, timestamp=timestamp)
        headers = {
            "Content-Type": signing.CONTENT_TYPE, "Host": self._host,
            "Authorization": parts.authorization, "X-TC-Action": action,
            "X-TC-Version": VERSION, "X-TC-Region": region, "X-TC-Timestamp": str(timestamp),
            "X-TC-Language": "en-US", "X-TC-RequestClient": f"trtc-exporter/{__version__}",
        }
        if creds.token is not None:
            headers["X-TC-Token"] = creds.token.reveal()
        return headers

    def _send(self, action: str, body: bytes,
              headers: dict[str, str]) -> tuple[TaskStatus | ApiFailure, str | None]:
        try:
            reply = self._http.post(self._url, body, headers, self._timeout)
        except transport.TransportError as exc:  # no answer, a cut-off or oversized body
            return ApiFailure(exc.code, str(exc)), exc.date
        if reply.status != 200:
            code = "HTTP5xx" if reply.status >= 500 else "InvalidResponse"
            return ApiFailure(code, f"HTTP {reply.status}"), reply.date
        return parse_response(action, reply.body), reply.date
