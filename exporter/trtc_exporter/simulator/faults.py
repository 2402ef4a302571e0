"""Faults: what can go wrong, and the set of faults in force on the simulator's clock.

A fault is switched on at an instant, waits ``after`` seconds, lasts ``duration`` seconds, and hits
matching requests with its ``probability``. Parsing and validation live in ``faultparse``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from random import Random
from typing import Any

ParamValue = float | int | str | tuple[str, ...]


class FaultKind(StrEnum):
    """Every failure the simulator can produce; the value doubles as the stats code."""

    LATENCY = "latency"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELDS = "missing_fields"
    WRONG_TYPES = "wrong_types"
    HUGE_BODY = "huge_body"
    UNKNOWN_STATUS = "unknown_status"
    UNKNOWN_ERROR_CODE = "unknown_error_code"
    INTERNAL_ERROR = "internal_error"
    CONNECTION_RESET = "connection_reset"
    TRICKLE_BODY = "trickle_body"
    REQUEST_LIMIT_STORM = "request_limit_storm"
    AUTH_FAILURE = "auth_failure"
    RATE_LIMIT_DROP = "rate_limit_drop"


PARAMS: dict[FaultKind, dict[str, tuple[str, ParamValue | None]]] = {
    FaultKind.LATENCY: {
        "distribution": ("choice:fixed,uniform,lognormal", "fixed"),
        "seconds": ("seconds", 0.1),
        "min": ("seconds", 0.0),
        "max": ("seconds", 0.5),
        "median": ("seconds", 0.1),
        "sigma": ("number", 0.5),
    },
    FaultKind.TIMEOUT: {"seconds": ("seconds", 30.0)},
    FaultKind.HTTP_ERROR: {"status": ("choice:500,502,503", 502)},
    FaultKind.MALFORMED_JSON: {},
    FaultKind.MISSING_FIELDS: {"fields": ("strings", ("Status",))},
    FaultKind.WRONG_TYPES: {},
    FaultKind.HUGE_BODY: {"bytes": ("positive_int", 16 * 1024 * 1024)},
    FaultKind.UNKNOWN_STATUS: {"status": ("string", "Suspended")},
    FaultKind.UNKNOWN_ERROR_CODE: {
        "code": ("string", "FailedOperation.SimulatedUnknownCode"),
        "message": ("string", "An error code this client has never seen."),
    },
    FaultKind.INTERNAL_ERROR: {},
    FaultKind.CONNECTION_RESET: {},
    FaultKind.TRICKLE_BODY: {"chunk_bytes": ("positive_int", 8), "interval": ("seconds", 0.25)},
    FaultKind.REQUEST_LIMIT_STORM: {},
    FaultKind.AUTH_FAILURE: {"code": ("auth_code", "AuthFailure.SignatureFailure")},
    FaultKind.RATE_LIMIT_DROP: {"limit": ("non_negative_int", None)},
}
"""Per kind: parameter name -> (validation rule, default; None = required)."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault: kind, when and how often it fires, which requests it hits, its parameters."""

    kind: FaultKind
    probability: float = 1.0
    duration: float = math.inf
    after: float = 0.0
    actions: frozenset[str] | None = None
    task_id: str | None = None
    params: Mapping[str, ParamValue] = field(default_factory=dict)

    def param(self, name: str) -> ParamValue:
        """A parameter, or its documented default when the spec was built without it."""
        value = self.params.get(name, PARAMS[self.kind][name][1])
        if value is None:
            raise ValueError(f"a {self.kind.value} fault needs the parameter {name!r}")
        return value

    def num(self, name: str) -> float:
        """A numeric parameter (validated at parse time)."""
        value = self.param(name)
        if isinstance(value, (tuple, str)):
            raise TypeError(f"{self.kind}.{name} is not a number")
        return float(value)

    def text(self, name: str) -> str:
        """A string parameter."""
        return str(self.param(name))

    def strings(self, name: str) -> tuple[str, ...]:
        """A list-of-strings parameter."""
        value = self.param(name)
        return value if isinstance(value, tuple) else (str(value),)

    def to_json(self) -> dict[str, Any]:
        """The spec in the same shape the parser accepts."""
        out: dict[str, Any] = {"kind": self.kind.value, "probability": self.probability}
        out["duration"] = None if math.isinf(self.duration) else self.duration
        out["after"] = self.after
        if self.actions is not None:
            out["actions"] = sorted(self.actions)
        if self.task_id is not None:
            out["task_id"] = self.task_id
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()})
        return out


@dataclass(frozen=True, slots=True)
class ActiveFault:
    """A spec plus the instant it was switched on."""

    spec: FaultSpec
    activated_at: float

    def live(self, now: float) -> bool:
        """Inside ``[activated_at + after, ... + duration)``."""
        begin = self.activated_at + self.spec.after
        return begin <= now < begin + self.spec.duration

    def expired(self, now: float) -> bool:
        """True once the fault's window has ended (it will never be live again and may be
        dropped)."""
        return now >= self.activated_at + self.spec.after + self.spec.duration


class FaultSet:
    """The faults in force; dice rolls come from one seeded RNG so runs are reproducible."""

    def __init__(self, rng: Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._faults: list[ActiveFault] = []

    def add(self, spec: FaultSpec, now: float) -> None:
        """Switch ``spec`` on at ``now`` (its ``after`` counts from there)."""
        with self._lock:
            self._faults.append(ActiveFault(spec, now))

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def active(self, now: float) -> list[ActiveFault]:
        """Faults not yet expired (pending ones included); expired ones are dropped."""
        with self._lock:
            self._faults = [f for f in self._faults if not f.expired(now)]
            return list(self._faults)

    def pick(self, action: str, task_id: str | None, now: float) -> list[FaultSpec]:
        """Faults that hit this request: live, matching, and won on their probability roll."""
        hits = []
        for fault in self.active(now):
            spec = fault.spec
            if spec.kind is FaultKind.RATE_LIMIT_DROP or not fault.live(now):
                continue
            if spec.actions is not None and action not in spec.actions:
                continue
            if spec.task_id is not None and spec.task_id != task_id:
                continue
            if spec.probability >= 1.0 or self.random() < spec.probability:
                hits.append(spec)
        return hits

    def limit_override(self, action: str, now: float) -> int | None:
        """The lowest temporary rate limit in force for this action, if any."""
        limits = [
            int(f.spec.num("limit"))
            for f in self.active(now)
            if f.spec.kind is FaultKind.RATE_LIMIT_DROP
            and f.live(now)
            and (f.spec.actions is None or action in f.spec.actions)
        ]
        return min(limits) if limits else None

    def random(self) -> float:
        """One roll in [0, 1) from the seeded RNG (thread-safe, so runs stay reproducible)."""
        with self._lock:
            return self._rng.random()

    def latency(self, spec: FaultSpec) -> float:
        """Draw one delay from a latency fault's distribution."""
        dist = spec.text("distribution")
        with self._lock:
            if dist == "uniform":
                return self._rng.uniform(spec.num("min"), spec.num("max"))
            if dist == "lognormal":
                return spec.num("median") * math.exp(self._rng.gauss(0.0, spec.num("sigma")))
        return spec.num("seconds")
