"""The simulator verifies TC3-HMAC-SHA256 signatures like the real API (pure, pinned clock)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from trtc_exporter.api import signing
from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import SimulatorAPI, parse_scenario, signed_headers

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "tc3_vectors.json").read_text())
ALL = VECTORS["vectors"] + VECTORS["extra_vectors"]
SID, KEY = "AKIDEXAMPLE0000000000000000000000001", "EXAMPLEsecretKEY0000000000000000001"
TOKEN_SID, TOKEN_KEY = "AKIDEXAMPLE0000000000000000000000002", "EXAMPLEsecretKEY0000000000000000002"
TOKEN = "EXAMPLEtoken0000000000000000000000000000000000000000000000000001"
NOW = 1_795_514_400


def _task(task_id: str, region: str, **kw: Any) -> dict[str, Any]:
    return {"task_id": task_id, "sdk_app_id": 1400000001, "region": region, "start_offset": -60,
            "phases": {"idle": 1, "preparing": 1, "in_progress": "forever"}, **kw}  # fmt: skip


SCENARIO = {
    "credentials": [
        {"secret_id": SID, "secret_key": KEY},
        {"secret_id": TOKEN_SID, "secret_key": TOKEN_KEY, "token": TOKEN},
    ],
    "tasks": [
        _task("v2_20261124_exampleTaskId000000000000000001", "ap-guangzhou"),
        _task("sess-sg", "ap-singapore", session_id="session-0001"),
        {**_task("sess-tokyo", "ap-tokyo", session_id="会议-café-😀"), "sdk_app_id": 1400000002},
        _task("v2_20261124_exampleTaskId000000000000000004", "na-siliconvalley"),
        _task("v2_20261123_exampleTaskId000000000000000005", "ap-guangzhou", start_offset=-86400),
        _task("sim-task-0001", "ap-guangzhou"),
    ],
}


def _api(now: float = NOW) -> SimulatorAPI:
    return SimulatorAPI(parse_scenario(SCENARIO), FakeClock(now))


def _response(api: SimulatorAPI, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    result = api.handle("POST", headers, body)
    assert result.status == 200
    assert result.content_type == "application/json"
    response: dict[str, Any] = json.loads(result.body)["Response"]
    assert response["RequestId"]
    return response


def _headers(body: bytes, **kw: Any) -> dict[str, str]:
    args: dict[str, Any] = {"secret_id": SID, "secret_key": KEY, "host": "sim.local",
                            "action": "DescribeAITranscription", "timestamp": NOW}  # fmt: skip
    args.update(kw)
    return signed_headers(body=body, **args)


def _code(response: dict[str, Any]) -> str | None:
    error = response.get("Error")
    return None if error is None else str(error["Code"])


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_sdk_vector_is_accepted(vector: dict[str, Any]) -> None:
    """Every request the official SDK produced (headers and body as sent) is answered."""
    inputs = vector["inputs"]
    api = _api(inputs["timestamp"])
    headers = dict(vector["expected"]["headers_sent_by_sdk"])
    response = _response(api, headers, inputs["payload"].encode("utf-8"))
    assert _code(response) is None, response


def test_request_signed_by_signing_module_is_accepted() -> None:
    """A request signed with trtc_exporter.api.signing.sign for the simulator's host:port passes."""
    body = b'{"TaskId": "sim-task-0001"}'
    parts = signing.sign(secret_id=SID, secret_key=KEY, host="127.0.0.1:8080", payload=body,
                         timestamp=NOW)  # fmt: skip
    headers = {"Content-Type": "application/json", "Host": "127.0.0.1:8080",
               "X-TC-Action": "DescribeAITranscription", "X-TC-Version": "2019-07-22",
               "X-TC-Region": "ap-guangzhou", "X-TC-Timestamp": str(NOW),
               "Authorization": parts.authorization}  # fmt: skip
    assert _response(_api(), headers, body)["Status"] == "InProgress"


def _sign_generic(body: bytes, headers: dict[str, str], names: list[str]) -> str:
    """An independent TC3 signer over an arbitrary SignedHeaders list (values lower-cased)."""
    canonical = "".join(f"{n}:{headers[n].strip().lower()}\n" for n in names)
    signed = ";".join(names)
    request = f"POST\n/\n\n{canonical}\n{signed}\n{hashlib.sha256(body).hexdigest()}"
    date = signing.utc_date(NOW)
    to_sign = (f"TC3-HMAC-SHA256\n{NOW}\n{date}/trtc/tc3_request\n"
               + hashlib.sha256(request.encode()).hexdigest())  # fmt: skip
    key = ("TC3" + KEY).encode()
    for part in (date, "trtc", "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (f"TC3-HMAC-SHA256 Credential={SID}/{date}/trtc/tc3_request, "
            f"SignedHeaders={signed}, Signature={sig}")  # fmt: skip


def test_more_signed_headers_are_accepted() -> None:
    """Signing x-tc-action too (allowed by the TC3 docs) verifies with lower-cased values."""
    body = b'{"TaskId": "sim-task-0001"}'
    headers = _headers(body)
    lower = {k.lower(): v for k, v in headers.items()}
    headers["Authorization"] = _sign_generic(body, lower, ["content-type", "host", "x-tc-action"])
    assert _code(_response(_api(), headers, body)) is None


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h, b: (_headers(b, secret_key="wrong-key"), b), "AuthFailure.SignatureFailure"),
        (lambda h, b: ({**h, "Host": "other.example"}, b), "AuthFailure.SignatureFailure"),
        (lambda h, b: (h, b.replace(b"0001", b"0002")), "AuthFailure.SignatureFailure"),
        (lambda h, b: (_headers(b, secret_id="AKIDunknown"), b), "AuthFailure.SecretIdNotFound"),
        (lambda h, b: ({**h, "Authorization": "Bearer x"}, b), "AuthFailure.InvalidAuthorization"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "Authorization"}, b),
         "AuthFailure.InvalidAuthorization"),
        (lambda h, b: (_headers(b, timestamp=NOW - 301), b), "AuthFailure.SignatureExpire"),
        (lambda h, b: (_headers(b, timestamp=NOW + 301), b), "AuthFailure.SignatureExpire"),
        (lambda h, b: ({**h, "X-TC-Timestamp": str(NOW + 1)}, b), "AuthFailure.SignatureFailure"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "X-TC-Timestamp"}, b),
         "MissingParameter"),
    ],
    ids=["wrong-key", "wrong-host", "tampered-body", "unknown-secret-id", "not-tc3",
         "no-authorization", "expired-past", "expired-future", "timestamp-not-signed",
         "no-timestamp"],
)  # fmt: skip
def test_bad_signatures_are_rejected_with_the_api_code(mutate: Any, code: str) -> None:
    """Each kind of signing mistake is answered with the error code the real API uses."""
    body = b'{"TaskId": "sim-task-0001"}'
    headers, sent = mutate(_headers(body), body)
    assert _code(_response(_api(), headers, sent)) == code


def test_expired_signature_message_carries_server_time() -> None:
    """The SignatureExpire message ends with the server's Unix time, usable to measure skew."""
    body = b'{"TaskId": "sim-task-0001"}'
    response = _response(_api(NOW + 400), _headers(body), body)
    assert response["Error"]["Message"].endswith(f"the server time {NOW + 400}.")


def test_skew_of_exactly_300_seconds_is_still_accepted() -> None:
    """The five-minute tolerance is inclusive."""
    body = b'{"TaskId": "sim-task-0001"}'
    assert _code(_response(_api(NOW + 300), _headers(body), body)) is None


def test_temporary_credential_needs_its_token() -> None:
    """A SecretId configured with a token is refused without X-TC-Token or with a wrong one."""
    body = b'{"TaskId": "sim-task-0001"}'
    args = {"secret_id": TOKEN_SID, "secret_key": TOKEN_KEY}
    assert _code(_response(_api(), _headers(body, **args), body)) == "AuthFailure.TokenFailure"
    wrong = _headers(body, token="nope", **args)
    assert _code(_response(_api(), wrong, body)) == "AuthFailure.TokenFailure"
    assert _code(_response(_api(), _headers(body, token=TOKEN, **args), body)) is None


def test_scope_with_wrong_service_or_local_date_is_rejected() -> None:
    """A credential scope naming another service, or a non-UTC date, fails the signature check."""
    body = b'{"TaskId": "sim-task-0001"}'
    headers = _headers(body)
    for bad in ("/2026-11-24/cvm/tc3_request", "/2026-11-25/trtc/tc3_request"):
        auth = headers["Authorization"].replace("/2026-11-24/trtc/tc3_request", bad)
        response = _response(_api(), {**headers, "Authorization": auth}, body)
        assert _code(response) == "AuthFailure.SignatureFailure"
