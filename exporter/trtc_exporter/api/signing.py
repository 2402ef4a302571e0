"""TC3-HMAC-SHA256 request signing for Tencent Cloud API 3.0, written against the official SDK.

We sign exactly what the SDK signs (``content-type`` and ``host``) so that the test vectors made
with the SDK reproduce byte for byte, and so the simulator can verify real SDK requests too.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "trtc"
SIGNED_HEADERS = "content-type;host"
CONTENT_TYPE = "application/json"


@dataclass(frozen=True, slots=True)
class SignatureParts:
    """Every intermediate of one signature, so tests can compare each step with the vectors."""

    date: str
    credential_scope: str
    hashed_payload: str
    canonical_request: str
    string_to_sign: str
    signature: str
    authorization: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.digest(key, msg.encode("utf-8"), "sha256")  # one C call, no HMAC object


# OpenSSL 3 sets up each new digest or HMAC context through its provider registry (a name and
# property lookup under a global lock: openssl/openssl#19612, #25858); copying a context that is
# already set up skips that. Per request, from cold caches, that was 6 % of the exporter's CPU
# (docs/performance.md, issue 16 goal 5). The copies are the hashlib and hmac public API.
_SHA256 = hashlib.sha256()


def _sha256_hex(data: bytes) -> str:
    digest = _SHA256.copy()
    digest.update(data)
    return digest.hexdigest()


# 32 kept per cache: one per account (each account signs with its own key every poll; with
# more accounts than entries every signature would miss), rotated keys age out
_KEPT_KEYS = 32


@lru_cache(maxsize=_KEPT_KEYS)
def _keyed(secret_key: str, date: str, service: str) -> hmac.HMAC:
    """An HMAC context keyed with the day's derived key, copied for each signature."""
    return hmac.new(_signing_key(secret_key, date, service), digestmod="sha256")


@lru_cache(maxsize=_KEPT_KEYS)
def _signing_key(secret_key: str, date: str, service: str) -> bytes:
    """The derived key (kSigning) of a secret key for one UTC date and service: it changes
    once a day, so three of a signature's four HMACs are done once a day, not per request."""
    k_date = _hmac(("TC3" + secret_key).encode("utf-8"), date)
    return _hmac(_hmac(k_date, service), "tc3_request")


def utc_date(timestamp: int) -> str:
    """The scope date is the timestamp's UTC date; a local date breaks requests near midnight."""
    return _utc_day(timestamp // 86400)  # a UTC day is 86 400 s: no leap seconds in Unix time


@lru_cache(maxsize=4)
def _utc_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86400, tz=UTC).strftime("%Y-%m-%d")


def sign(
    *,
    secret_id: str,
    secret_key: str,
    host: str,
    payload: bytes,
    timestamp: int,
    content_type: str = CONTENT_TYPE,
    service: str = SERVICE,
) -> SignatureParts:
    """Compute the TC3 signature of one POST / request with the given body bytes."""
    date = utc_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    hashed_payload = _sha256_hex(payload)
    canonical_headers = f"content-type:{content_type}\nhost:{host}\n"
    canonical_request = (
        f"POST\n/\n\n{canonical_headers}\n{SIGNED_HEADERS}\n{hashed_payload}"
    )
    string_to_sign = (
        f"{ALGORITHM}\n{timestamp}\n{scope}\n"
        + _sha256_hex(canonical_request.encode("utf-8"))
    )
    mac = _keyed(secret_key, date, service).copy()
    mac.update(string_to_sign.encode("utf-8"))
    signature = mac.hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
    )
    return SignatureParts(
        date=date,
        credential_scope=scope,
        hashed_payload=hashed_payload,
        canonical_request=canonical_request,
        string_to_sign=string_to_sign,
        signature=signature,
        authorization=authorization,
    )


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    """The three parts of an ``Authorization`` header, as a verifier needs them."""

    secret_id: str
    date: str
    service: str
    signed_headers: str
    signature: str


def parse_authorization(header: str) -> ParsedAuthorization | None:
    """Split an Authorization header; None when it is not a well-formed TC3 header."""
    prefix = ALGORITHM + " "
    if not header.startswith(prefix):
        return None
    fields: dict[str, str] = {}
    for part in header[len(prefix):].split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return None
        fields[key] = value
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 4 or credential[3] != "tc3_request":
        return None
    if "SignedHeaders" not in fields or "Signature" not in fields:
        return None
    return ParsedAuthorization(
        secret_id=credential[0],
        date=credential[1],
        service=credential[2],
        signed_headers=fields["SignedHeaders"],
        signature=fields["Signature"],
    )
