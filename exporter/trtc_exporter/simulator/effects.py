"""How selected faults change one answer: delay it, replace it, or mangle a good one.

Three families, applied in this order by the API:
- delays (``latency``, ``timeout``) add waiting time to whatever is answered;
- replacements (gateway HTML, reset, malformed JSON, forced error codes) stand in for the API,
  which then never sees the request (it spends no rate-limit slot);
- mangling (missing/wrong-typed fields, unknown status, huge or trickled body) alters a
  successful Describe answer, so the client's parser is what gets tested.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from trtc_exporter.simulator import envelope
from trtc_exporter.simulator.envelope import ApiResult, Transport
from trtc_exporter.simulator.faults import FaultKind, FaultSpec

REPLACING = (
    FaultKind.CONNECTION_RESET,
    FaultKind.HTTP_ERROR,
    FaultKind.MALFORMED_JSON,
    FaultKind.AUTH_FAILURE,
    FaultKind.REQUEST_LIMIT_STORM,
    FaultKind.INTERNAL_ERROR,
    FaultKind.UNKNOWN_ERROR_CODE,
)
"""Faults that answer instead of the API; the first one in this order wins."""

MANGLING = (
    FaultKind.MISSING_FIELDS,
    FaultKind.WRONG_TYPES,
    FaultKind.UNKNOWN_STATUS,
    FaultKind.HUGE_BODY,
)


def delay(hits: list[FaultSpec], sample_latency: Callable[[FaultSpec], float]) -> float:
    """Total extra wait before answering."""
    total = 0.0
    for spec in hits:
        if spec.kind is FaultKind.LATENCY:
            total += sample_latency(spec)
        elif spec.kind is FaultKind.TIMEOUT:
            total += spec.num("seconds")
    return total


def replacement(hits: list[FaultSpec], limit: int, plain: bool = False) -> ApiResult | None:
    """The answer a replacing fault gives instead of the API, if any fault replaces it.

    ``plain``: RequestLimitExceeded messages state no numbers (``limit_message: plain``).
    """
    kinds = {spec.kind: spec for spec in hits}
    for kind in REPLACING:
        spec = kinds.get(kind)
        if spec is not None:
            return _replace(spec, limit, plain)
    return None


def _replace(spec: FaultSpec, limit: int, plain: bool) -> ApiResult:
    kind = spec.kind
    if kind is FaultKind.CONNECTION_RESET:
        return ApiResult(status=0, body=b"", code=kind.value, transport=Transport.RESET)
    if kind is FaultKind.HTTP_ERROR:
        return envelope.html_error(int(spec.num("status")))
    if kind is FaultKind.MALFORMED_JSON:
        body = b'{"Response":{"Status":"InProgress","TaskId":"'
        return ApiResult(status=200, body=body, code=kind.value)
    if kind is FaultKind.AUTH_FAILURE:
        error = envelope.signature_failure()
        code = spec.text("code")
        message = error.message if code == error.code else f"Simulated {code}."
        return envelope.error(code, message)
    if kind is FaultKind.REQUEST_LIMIT_STORM:
        return envelope.from_error(envelope.limit_exceeded(limit + 1, limit, "en-US", plain))
    if kind is FaultKind.INTERNAL_ERROR:
        return envelope.from_error(envelope.internal_error())
    return envelope.error(spec.text("code"), spec.text("message"))


def mangle(result: ApiResult, hits: list[FaultSpec]) -> ApiResult:
    """Apply body faults to a successful answer and the trickle fault to any answer."""
    if result.code == "Success" and result.fields:
        for spec in hits:
            if spec.kind in MANGLING:
                result = _mangle(result, spec)
    for spec in hits:
        if spec.kind is FaultKind.TRICKLE_BODY:
            result = dataclasses.replace(
                result,
                transport=Transport.TRICKLE,
                trickle_chunk=int(spec.num("chunk_bytes")),
                trickle_interval=spec.num("interval"),
                code=spec.kind.value,
            )
    return result


def _mangle(result: ApiResult, spec: FaultSpec) -> ApiResult:
    fields = dict(result.fields)
    payload: dict[str, object] = {"Response": fields}
    if spec.kind is FaultKind.MISSING_FIELDS:
        for name in spec.strings("fields"):
            if name == "Response":
                payload = {"RequestId": fields.get("RequestId")}
            fields.pop(name, None)
    elif spec.kind is FaultKind.WRONG_TYPES:
        fields["Status"] = 2
        start = fields.get("StartTime")
        fields["StartTime"] = str(start) if isinstance(start, int) else 1795514400
        fields["TaskId"] = None
    elif spec.kind is FaultKind.UNKNOWN_STATUS:
        fields["Status"] = spec.text("status")
    elif spec.kind is FaultKind.HUGE_BODY:
        size = int(spec.num("bytes"))
        fields["Padding"] = "x" * max(0, size - len(envelope.encode(payload)) - 14)
    return dataclasses.replace(
        result, body=envelope.encode(payload), code=spec.kind.value, fields=fields
    )
