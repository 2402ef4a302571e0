"""The simulated endpoint: one request in, one decided answer out, no sockets involved.

``SimulatorAPI.handle`` takes method, headers, body and arrival time and returns an ``ApiResult``
(status, body, and transport instructions such as "wait 2 s" or "reset the connection"). The HTTP
server only executes that decision, so every behaviour here is unit-testable on a ``FakeClock``.

Check order, as a gateway would do it: method and headers, action, version, signature (time skew,
SecretId, token, HMAC), region, rate limit, body, business logic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from random import Random
from typing import Any

from trtc_exporter.api import signing
from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.simulator import effects, envelope
from trtc_exporter.simulator.actions import ACTIONS, ActionContext
from trtc_exporter.simulator.auth import verify
from trtc_exporter.simulator.envelope import ApiError, ApiResult, invalid, missing
from trtc_exporter.simulator.faults import FaultKind, FaultSet, FaultSpec
from trtc_exporter.simulator.ratelimit import RateLimiter
from trtc_exporter.simulator.scenario import Scenario, TaskSpec
from trtc_exporter.simulator.sender import CallbackSender
from trtc_exporter.simulator.signed import VERSION
from trtc_exporter.simulator.stats import Stats
from trtc_exporter.simulator.tasks import REGIONS, Api, Task, TaskStore

log = logging.getLogger(__name__)

MAX_BODY = 10 * 1024 * 1024
"""API 3.0 refuses request bodies over 10 MB."""

_ID_CHARS = string.ascii_letters + string.digits


class SimulatorAPI:
    """State and behaviour of one simulated Tencent Cloud account for the TRTC service."""

    def __init__(self, scenario: Scenario, clock: Clock = SYSTEM_CLOCK) -> None:
        self.clock = clock
        self.scenario = scenario
        self.started_at = clock.time()
        self.credentials = {c.secret_id: c for c in scenario.credentials}
        self.store = TaskStore()
        self.limiter = RateLimiter(count_throttled=scenario.count_throttled)
        self.faults = FaultSet(Random(f"faults:{scenario.seed}"))
        self.stats = Stats()
        self._rng = Random(f"task-ids:{scenario.seed}")
        self._lock = threading.Lock()
        self._default_limit = scenario.rate_limit
        self._limits = dict(scenario.rate_limits)
        self.plain_limit_message = scenario.limit_message == "plain"
        for spec in scenario.tasks:
            self.add_task(spec, self.started_at)
        for fault in scenario.faults:
            self.faults.add(fault, self.started_at)
        self.callbacks = (
            CallbackSender(scenario.callbacks, self.store, clock)
            if scenario.callbacks is not None
            else None
        )
        """Sender of TRTC event callbacks (not started: the server starts it), if configured."""

    def add_task(self, spec: TaskSpec, base: float | None = None) -> Task:
        """Create a task from a spec; ``start_offset`` counts from ``base`` (default: now)."""
        origin = (self.clock.time() if base is None else base) + spec.start_offset
        task = Task(
            task_id=spec.task_id,
            api=spec.api,
            sdk_app_id=spec.sdk_app_id,
            region=spec.region,
            phases=spec.phases,
            origin=origin,
            session_id=spec.session_id,
            dedupe_key=("session", spec.sdk_app_id, spec.session_id) if spec.session_id else None,
            repeat_after=spec.repeat_after,
        )
        self.store.add(task)
        for fault in spec.faults:
            self.faults.add(fault, self.clock.time())
        return task

    def add_fault(self, spec: FaultSpec) -> None:
        """Switch a fault on now (its ``after`` and ``duration`` count from this instant)."""
        self.faults.add(spec, self.clock.time())

    def limit_for(self, action: str, now: float | None = None) -> int:
        """The rate limit in force for an action, temporary drops included."""
        wall = self.clock.time() if now is None else now
        with self._lock:
            configured = self._limits.get(action, self._default_limit)
        override = self.faults.limit_override(action, wall)
        return configured if override is None else min(configured, override)

    def set_rate_limit(self, limit: int, action: str | None = None) -> None:
        """Change the configured limit of one action, or the default of all others."""
        with self._lock:
            if action is None:
                self._default_limit = limit
            else:
                self._limits[action] = limit

    def limits(self) -> dict[str, int]:
        """Effective limit per known action."""
        return {action: self.limit_for(action) for action in ACTIONS}

    def new_task_id(self, api: Api) -> str:
        """Ids shaped like the documented ones, with the ``+ - . _`` clients must not mangle."""
        with self._lock:
            if api is Api.AI:
                day = datetime.fromtimestamp(self.clock.time(), tz=UTC).strftime("%Y%m%d")
                return f"v2_{day}_" + "".join(self._rng.choices(_ID_CHARS, k=40))
            return "-" + "".join(self._rng.choices(_ID_CHARS + "+-_", k=44)) + "."

    def handle(
        self,
        method: str,
        headers: Mapping[str, str],
        body: bytes,
        arrival: float | None = None,
    ) -> ApiResult:
        """Answer one ``/`` request; ``arrival`` is the clock's monotonic time of receipt.

        The rate window and the stats use ``arrival`` (default: now), so a request is counted
        when it reached the server, however late this call runs.
        """
        try:
            return self._handle(method, headers, body, arrival)
        except Exception:  # a simulator bug must look like the API's InternalError, not a hang-up
            log.exception("simulator failed to answer a request")
            return envelope.from_error(envelope.internal_error())

    def _handle(
        self, method: str, headers: Mapping[str, str], body: bytes, arrival: float | None
    ) -> ApiResult:
        now = self.clock.monotonic()
        mono = now if arrival is None else min(arrival, now)
        wall = self.clock.time()
        h = {k.lower(): v for k, v in headers.items()}
        action = h.get("x-tc-action", "")
        parsed = signing.parse_authorization(h.get("authorization", ""))
        secret_id = parsed.secret_id if parsed is not None else ""
        self.stats.arrival((secret_id, action), mono, wall - (now - mono), now - mono)
        hits = self.faults.pick(action, self._fault_target(action, body, wall), wall)
        plain = self.plain_limit_message
        result = effects.replacement(hits, self.limit_for(action, wall), plain)
        if result is None:
            result = effects.mangle(self._process(method, h, body, action, mono, wall), hits)
        wait = effects.delay(hits, self.faults.latency)
        if wait > 0:
            result = dataclasses.replace(result, delay=result.delay + wait)
            if any(spec.kind is FaultKind.TIMEOUT for spec in hits):
                result = dataclasses.replace(result, code="timeout")
        self.stats.served(action, result.code)
        return result

    def _process(
        self, method: str, h: dict[str, str], body: bytes, action: str, mono: float, wall: float
    ) -> ApiResult:
        try:
            self._check_request(method, h, body, action)
            secret_id = verify(h, body, self.credentials, wall, self.scenario.max_skew)
            api, handler = ACTIONS[action]
            region = self._region(h, api)
            limit = self.limit_for(action, wall)
            decision = self.limiter.admit((secret_id, action), mono, limit)
            if not decision.allowed:
                language = h.get("x-tc-language", "en-US")
                raise envelope.limit_exceeded(
                    decision.seen, limit, language, self.plain_limit_message
                )
            return envelope.ok(handler(self._context(region, wall), _decode(body)))
        except ApiError as exc:
            return envelope.from_error(exc)
        except Exception:  # a simulator bug must look like the API's InternalError, not a crash
            log.exception("simulator failed on %s", action)
            return envelope.from_error(envelope.internal_error())

    @staticmethod
    def _check_request(method: str, h: dict[str, str], body: bytes, action: str) -> None:
        if method != "POST":
            raise ApiError("InvalidParameter", "Only POST requests with a JSON body are served.")
        if len(body) > MAX_BODY:
            raise ApiError("RequestSizeLimitExceeded", "The request body exceeds 10 MB.")
        if not h.get("content-type", "").startswith(envelope.JSON_CONTENT_TYPE):
            raise invalid("Content-Type", "must be application/json")
        if not action:
            raise missing("Action")
        if action not in ACTIONS:
            raise ApiError("InvalidAction", f"The requested action `{action}` does not exist.")
        version = h.get("x-tc-version")
        if version is None:
            raise missing("Version")
        if version != VERSION:
            raise ApiError(
                "NoSuchVersion",
                f"The requested version `{version}` of service `trtc` does not exist.",
            )

    @staticmethod
    def _region(h: dict[str, str], api: Api) -> str:
        region = h.get("x-tc-region")
        if not region:
            raise missing("Region")
        if region not in REGIONS[api]:
            raise ApiError("UnsupportedRegion", f"The region `{region}` is not supported.")
        return region

    def _context(self, region: str, wall: float) -> ActionContext:
        return ActionContext(
            store=self.store,
            now=wall,
            region=region,
            new_task_id=self.new_task_id,
            created_phases=self.scenario.created_phases,
            quotas=self.scenario.quotas,
            cloud_start_time_ms=self.scenario.cloud_start_time_ms,
        )

    def _fault_target(self, action: str, body: bytes, wall: float) -> str | None:
        """The task a request is about, so per-task faults can match session lookups too."""
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        task_id = data.get("TaskId")
        if isinstance(task_id, str) and task_id:
            return task_id
        sdk, session = data.get("SdkAppId"), data.get("SessionId")
        if action != "DescribeAITranscription" or not isinstance(sdk, int):
            return None
        if not isinstance(session, str):
            return None
        view = self.store.find_session(sdk, session, wall)
        return view.task_id if view is not None else None


def _decode(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise ApiError("InvalidParameter", "The request body must be a JSON object.")
    return data
