"""The Sign check: the vectors computed from the docs' formula, and every way a Sign is wrong."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from trtc_exporter.secret import Secret
from trtc_exporter.webhook.verify import Verdict, sign, verify

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "callback_vectors.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=[str(i) for i in range(len(VECTORS))])
def test_every_vector_verifies(vector: dict[str, Any]) -> None:
    """Each fixture body verifies with its key and Sign, and sign() reproduces the Sign."""
    key, raw = Secret(vector["key"]), vector["body"].encode()
    assert verify(key, raw, vector["sign"]) is Verdict.VALID
    assert sign(key, raw) == vector["sign"]


def test_the_tab_layout_body_is_verified_as_received() -> None:
    """Re-serialising the docs' tab-and-newline body breaks the signature: bytes are what count."""
    vector = VECTORS[1]
    compact = json.dumps(json.loads(vector["body"]), separators=(",", ":")).encode()
    assert verify(Secret(vector["key"]), compact, vector["sign"]) is Verdict.MISMATCH


def test_a_wrong_key_is_a_mismatch() -> None:
    """A Sign made with another key does not verify."""
    vector = VECTORS[0]
    assert verify(Secret("OtherKey1"), vector["body"].encode(), vector["sign"]) is Verdict.MISMATCH


def test_a_changed_body_is_a_mismatch() -> None:
    """One byte changed in the body fails verification."""
    vector = VECTORS[0]
    raw = vector["body"].encode().replace(b"901", b"902")
    assert verify(Secret(vector["key"]), raw, vector["sign"]) is Verdict.MISMATCH


@pytest.mark.parametrize("header", [None, ""])
def test_a_missing_header_is_missing(header: str | None) -> None:
    """No Sign header (or an empty one) is reported as missing, not as a mismatch."""
    assert verify(Secret("k"), b"{}", header) is Verdict.MISSING


@pytest.mark.parametrize("header", [
    "not base64!", "AAAA", base64.b64encode(b"x" * 31).decode(), "é" * 44, "A" * 500,
    VECTORS[0]["sign"][:-1],
])
def test_bad_base64_or_length_is_malformed(header: str) -> None:
    """Non-base64, non-ASCII, over-long or wrong-length values are malformed, never an error."""
    assert verify(Secret(VECTORS[0]["key"]), VECTORS[0]["body"].encode(), header) is \
        Verdict.MALFORMED


def test_surrounding_whitespace_is_tolerated() -> None:
    """A Sign with stray spaces around it (proxies fold headers) still verifies."""
    vector = VECTORS[2]
    assert verify(Secret(vector["key"]), vector["body"].encode(), f" {vector['sign']} ") is \
        Verdict.VALID
