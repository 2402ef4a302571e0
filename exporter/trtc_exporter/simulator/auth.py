"""TC3-HMAC-SHA256 verification, the server side of ``trtc_exporter.api.signing``.

Requests signed like the SDK (``SignedHeaders=content-type;host``) are checked by re-signing with
``signing.sign``, so client and simulator cannot drift apart. Other header lists, which the TC3
documentation allows, are canonicalised here: names lower-case, values trimmed and lower-cased,
in the order the client listed them.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from trtc_exporter.api import signing
from trtc_exporter.secret import Secret
from trtc_exporter.simulator.envelope import (
    ApiError,
    invalid,
    missing,
    signature_expired,
    signature_failure,
)

MAX_SKEW = 300.0
"""The API rejects timestamps more than five minutes away from its clock."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A key pair the simulator accepts; ``token`` makes it a temporary (STS-like) credential."""

    secret_id: str
    secret_key: Secret
    token: Secret | None = None


def _invalid_authorization() -> ApiError:
    return ApiError(
        "AuthFailure.InvalidAuthorization",
        "The `Authorization` header is missing or is not a valid TC3-HMAC-SHA256 header.",
    )


def verify(
    headers: Mapping[str, str],
    body: bytes,
    credentials: Mapping[str, Credential],
    now: float,
    max_skew: float = MAX_SKEW,
) -> str:
    """Check one request's signature; returns the SecretId or raises the API's AuthFailure."""
    parsed = signing.parse_authorization(headers.get("authorization", ""))
    if parsed is None:
        raise _invalid_authorization()
    timestamp = _timestamp(headers)
    if abs(now - timestamp) > max_skew:
        raise signature_expired(now)
    cred = credentials.get(parsed.secret_id)
    if cred is None:
        raise ApiError(
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found, please ensure that your SecretId is correct.",
        )
    if cred.token is not None and not hmac.compare_digest(
        headers.get("x-tc-token", "").encode(), cred.token.reveal().encode()
    ):
        raise ApiError("AuthFailure.TokenFailure", "The token is invalid or has expired.")
    if parsed.service != signing.SERVICE or parsed.date != signing.utc_date(timestamp):
        raise signature_failure()
    expected = _expected_signature(headers, body, cred, timestamp, parsed.signed_headers)
    if expected is None or not hmac.compare_digest(expected, parsed.signature):
        raise signature_failure()
    return parsed.secret_id


def _timestamp(headers: Mapping[str, str]) -> int:
    raw = headers.get("x-tc-timestamp")
    if raw is None:
        raise missing("Timestamp")
    if not raw.isdigit():
        raise invalid("Timestamp", "must be a Unix time in whole seconds")
    return int(raw)


def _expected_signature(
    headers: Mapping[str, str],
    body: bytes,
    cred: Credential,
    timestamp: int,
    signed_headers: str,
) -> str | None:
    """The signature the client should have sent; None when its header list cannot be valid."""
    names = signed_headers.split(";")
    if "content-type" not in names or "host" not in names:
        return None
    if any(n != n.lower() or n not in headers for n in names):
        return None
    if signed_headers == signing.SIGNED_HEADERS:
        return signing.sign(
            secret_id=cred.secret_id,
            secret_key=cred.secret_key.reveal(),
            host=headers["host"],
            payload=body,
            timestamp=timestamp,
            content_type=headers["content-type"],
        ).signature
    canonical_headers = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    canonical_request = (
        f"POST\n/\n\n{canonical_headers}\n{signed_headers}\n{hashlib.sha256(body).hexdigest()}"
    )
    return _sign_canonical(cred.secret_key.reveal(), timestamp, canonical_request)


def _sign_canonical(secret_key: str, timestamp: int, canonical_request: str) -> str:
    """Steps 4 to 6 of TC3 for an arbitrary canonical request."""
    date = signing.utc_date(timestamp)
    scope = f"{date}/{signing.SERVICE}/tc3_request"
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    string_to_sign = f"{signing.ALGORITHM}\n{timestamp}\n{scope}\n{digest}"
    key = ("TC3" + secret_key).encode("utf-8")
    for part in (date, signing.SERVICE, "tc3_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
