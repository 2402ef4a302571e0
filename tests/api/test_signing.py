"""TC3 signing reproduces the official SDK's vectors exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trtc_exporter.api import signing

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "tc3_vectors.json").read_text())
ALL = VECTORS["vectors"] + VECTORS["extra_vectors"]


def _sign(inputs: dict[str, Any]) -> signing.SignatureParts:
    return signing.sign(
        secret_id=inputs["secret_id"],
        secret_key=inputs["secret_key"],
        host=inputs["host"],
        payload=inputs["payload"].encode("utf-8"),
        timestamp=inputs["timestamp"],
        content_type=inputs["content_type"],
        service=inputs["service"],
    )


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_vector_reproduces_every_intermediate(vector: dict[str, Any]) -> None:
    """Every intermediate string and the final Authorization equal the SDK's output."""
    parts = _sign(vector["inputs"])
    expected = vector["expected"]
    assert parts.date == expected["date_utc"]
    assert parts.credential_scope == expected["credential_scope"]
    assert parts.hashed_payload == expected["hashed_payload"]
    assert parts.canonical_request == expected["canonical_request"]
    assert parts.string_to_sign == expected["string_to_sign"]
    assert parts.signature == expected["signature"]
    assert parts.authorization == expected["authorization"]


def test_scope_date_is_utc_not_local() -> None:
    """A timestamp at 01:46 Beijing time (17:46 UTC the day before) is signed with the UTC date."""
    assert signing.utc_date(1795450000) == "2026-11-23"


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_authorization_parses_back(vector: dict[str, Any]) -> None:
    """The verifier's parser recovers the secret id, date, service and signature."""
    parsed = signing.parse_authorization(vector["expected"]["authorization"])
    assert parsed is not None
    assert parsed.secret_id == vector["inputs"]["secret_id"]
    assert parsed.date == vector["expected"]["date_utc"]
    assert parsed.service == "trtc"
    assert parsed.signed_headers == "content-type;host"
    assert parsed.signature == vector["expected"]["signature"]


@given(st.text(max_size=200))
def test_parse_authorization_never_raises(header: str) -> None:
    """Arbitrary header text is either parsed or rejected with None, never an exception."""
    result = signing.parse_authorization(header)
    assert result is None or result.signature is not None


def test_a_key_rotated_the_same_day_signs_with_the_new_key() -> None:
    """The derived key is kept per secret key and day: a second key's signature is its own,
    as the uncached TC3 steps compute it."""
    import hashlib
    import hmac

    def reference(secret_key: str, string_to_sign: str, date: str) -> str:
        key = ("TC3" + secret_key).encode()
        for part in (date, "trtc", "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()

    for secret_key in ("first-key", "second-key", "first-key"):
        parts = signing.sign(secret_id="id", secret_key=secret_key, host="trtc.test",
                             payload=b"{}", timestamp=1795514400)
        assert parts.signature == reference(secret_key, parts.string_to_sign, parts.date)


def test_signatures_from_copied_contexts_match_fresh_ones_across_threads() -> None:
    """Each signature copies one shared, already keyed HMAC context and a set-up SHA-256 one:
    eight threads signing different bodies at once get what a fresh computation gives."""
    import hashlib
    import hmac
    import threading

    key = signing._signing_key("secret", "2026-11-24", "trtc")
    results: dict[int, tuple[str, str, str]] = {}

    def sign_many(worker: int) -> None:
        for i in range(200):
            payload = f'{{"TaskId": "t-{worker}-{i}"}}'.encode()
            parts = signing.sign(secret_id="id", secret_key="secret", host="trtc.test",
                                 payload=payload, timestamp=1795514400)
            results[worker * 1000 + i] = (parts.hashed_payload, parts.string_to_sign,
                                          parts.signature)

    threads = [threading.Thread(target=sign_many, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 1600
    for n, (hashed, string_to_sign, signature) in results.items():
        payload = f'{{"TaskId": "t-{n // 1000}-{n % 1000}"}}'.encode()
        assert hashed == hashlib.sha256(payload).hexdigest()
        assert signature == hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(1795478400 - 3, 1795478400 + 2),
                          st.binary(max_size=64)), min_size=1, max_size=20))
def test_kept_keys_sign_like_fresh_ones_across_keys_and_midnight(
        calls: list[tuple[int, int, bytes]]) -> None:
    """Seven accounts' keys (more than the kept four) signing in any order around a UTC
    midnight each get the signature the uncached TC3 steps compute for their key and day."""
    import hashlib
    import hmac

    for account, timestamp, payload in calls:
        secret_key = f"key-of-account-{account}"
        parts = signing.sign(secret_id="id", secret_key=secret_key, host="trtc.test",
                             payload=payload, timestamp=timestamp)
        key = ("TC3" + secret_key).encode()
        for part in (signing.utc_date(timestamp), "trtc", "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        assert parts.hashed_payload == hashlib.sha256(payload).hexdigest()
        assert parts.signature == hmac.new(key, parts.string_to_sign.encode(),
                                           hashlib.sha256).hexdigest()


def test_eight_accounts_signing_in_turn_keep_their_contexts() -> None:
    """Accounts that sign in turn (each poll of each account) are all kept: from the second
    round on no signature sets up a key."""
    keys = [f"account-{n}-key" for n in range(8)]
    for key in keys:  # the first round sets each up
        signing.sign(secret_id="id", secret_key=key, host="trtc.test", payload=b"{}",
                     timestamp=1795514400)
    misses = signing._keyed.cache_info().misses
    for key in keys * 3:
        signing.sign(secret_id="id", secret_key=key, host="trtc.test", payload=b"{}",
                     timestamp=1795514400)
    assert signing._keyed.cache_info().misses == misses
