"""The ``Sign`` header of a TRTC callback: ``base64(HMAC-SHA256(key, raw body))``.

Source: TRTC "Verify Signature Example" (doc 54912, https://trtc.io/document/54912): the body is the
request body exactly as received ("do not make any modifications"; the docs' example body holds
tabs and newlines), the key is the one set in the console (up to 32 letters and digits). We compare
the decoded digests with :func:`hmac.compare_digest`, so the time taken does not reveal how many
bytes of a forged signature were right.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac

from trtc_exporter.secret import Secret

DIGEST_BYTES = 32  # SHA-256
_MAX_SIGN_CHARS = 128  # a base64 SHA-256 is 44 characters; anything far longer is not a Sign


class Verdict(enum.Enum):
    """How a ``Sign`` header compares with the body; only ``VALID`` lets a callback in."""

    VALID = "valid"
    MISSING = "missing"  # no Sign header, or an empty one
    MALFORMED = "malformed"  # not base64 of 32 bytes
    MISMATCH = "mismatch"  # well-formed, but made with another key or over another body


def sign(key: Secret, body: bytes) -> str:
    """The ``Sign`` value TRTC sends for ``body`` with ``key`` (ASCII base64, 44 characters)."""
    digest = hmac.new(key.reveal().encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(key: Secret, body: bytes, header: str | None) -> Verdict:
    """Check a ``Sign`` header against the raw body; never raises, whatever the header holds."""
    if not header:
        return Verdict.MISSING
    claimed = _decode(header)
    if claimed is None:
        return Verdict.MALFORMED
    expected = hmac.new(key.reveal().encode("utf-8"), body, hashlib.sha256).digest()
    return Verdict.VALID if hmac.compare_digest(claimed, expected) else Verdict.MISMATCH


def _decode(header: str) -> bytes | None:
    """The 32 digest bytes of a strict standard-base64 header, or None."""
    text = header.strip()
    if len(text) > _MAX_SIGN_CHARS or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == DIGEST_BYTES else None
