"""Request errors of the simulator: parameters, body, common headers, regions (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import SimulatorAPI, parse_scenario, signed_headers

SID, KEY = "AKIDerrors", "errorskey"
T0 = 1_795_514_400
SCENARIO = {
    "credentials": [{"secret_id": SID, "secret_key": KEY}],
    "tasks": [
        {"task_id": "ai-1", "sdk_app_id": 1400000001},
        {"task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": 1400000002,
         "region": "ap-hongkong"},
    ],
}  # fmt: skip


class Client:
    """Signs requests and hands them to SimulatorAPI.handle, returning the decoded Response."""

    def __init__(self) -> None:
        self.api = SimulatorAPI(parse_scenario(SCENARIO), FakeClock(T0))

    def raw(self, action: str, body: bytes, region: str = "ap-guangzhou") -> Any:
        headers = signed_headers(secret_id=SID, secret_key=KEY, host="h", action=action,
                                 body=body, timestamp=T0, region=region)  # fmt: skip
        return self.api.handle("POST", headers, body)

    def call(self, action: str, params: Any, region: str = "ap-guangzhou") -> dict[str, Any]:
        response: dict[str, Any] = json.loads(
            self.raw(action, json.dumps(params).encode(), region).body
        )
        return response["Response"]


def _code(response: dict[str, Any]) -> str | None:
    return response["Error"]["Code"] if "Error" in response else None


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("DescribeAITranscription", {}, "MissingParameter"),
        ("DescribeAITranscription", {"TaskId": 5}, "InvalidParameter"),
        ("DescribeAITranscription", {"TaskId": ""}, "MissingParameter"),
        ("DescribeAITranscription", {"TaskId": "", "SdkAppId": "1", "SessionId": "s"},
         "InvalidParameter"),
        ("DescribeAITranscription", {"TaskId": "", "SdkAppId": 1}, "MissingParameter"),
        ("DescribeAITranscription", {"TaskId": "a b"}, "InvalidParameter.TaskId"),
        ("DescribeAITranscription", {"TaskId": "x" * 300}, "InvalidParameter.TaskId"),
        ("DescribeAITranscription", {"TaskId": "nope"}, "FailedOperation.TaskNotExist"),
        ("DescribeAITranscription", {"TaskId": "ai-1", "Extra": 1}, "UnknownParameter"),
        ("DescribeAITranscription", [1, 2], "InvalidParameter"),
        ("DescribeCloudTranscription", {"TaskId": "cloud-1"}, "MissingParameter"),
        ("DescribeCloudTranscription", {"SdkAppId": True, "TaskId": "c"}, "InvalidParameter"),
        ("StopAITranscription", {"TaskId": "nope"}, "FailedOperation.TaskNotExist"),
        ("StartAITranscription", {"SdkAppId": 1, "RoomId": "1"}, "MissingParameter"),
        ("CreateCloudTranscription", {"SdkAppId": 1, "RoomId": "1", "RoomIdType": 3},
         "InvalidParameter"),
    ],
)  # fmt: skip
def test_bad_parameters_get_the_api_error_codes(action: str, params: Any, code: str) -> None:
    """Missing, wrong-typed, unknown or malformed parameters are answered like API 3.0 does."""
    region = "ap-hongkong" if "Cloud" in action else "ap-guangzhou"
    assert _code(Client().call(action, params, region)) == code


def test_body_that_is_not_json_is_invalid_parameter() -> None:
    """A body that does not decode as JSON is InvalidParameter, not a crash."""
    response = json.loads(Client().raw("DescribeAITranscription", b"{not json").body)["Response"]
    assert _code(response) == "InvalidParameter"


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("X-TC-Action", "DescribeEverything", "InvalidAction"),
        ("X-TC-Version", "2020-01-01", "NoSuchVersion"),
        ("X-TC-Region", "ap-beijing", "UnsupportedRegion"),
        ("X-TC-Region", "", "MissingParameter"),
        ("Content-Type", "text/plain", "InvalidParameter"),
    ],
)
def test_common_header_errors(header: str, value: str, code: str) -> None:
    """Unknown action, wrong version, unsupported region and bad Content-Type are refused."""
    c = Client()
    body = b'{"TaskId": "ai-1"}'
    headers = signed_headers(secret_id=SID, secret_key=KEY, host="h", body=body,
                             action="DescribeAITranscription", timestamp=T0)  # fmt: skip
    headers[header] = value
    response = json.loads(c.api.handle("POST", headers, body).body)["Response"]
    assert _code(response) == code


def test_regions_differ_between_generations() -> None:
    """ap-hongkong serves 2.0 only; ap-tokyo serves 1.0 only."""
    c = Client()
    assert _code(c.call("DescribeAITranscription", {"TaskId": "ai-1"}, "ap-hongkong")) == (
        "UnsupportedRegion"
    )
    params = {"SdkAppId": 1400000002, "TaskId": "cloud-1"}
    assert _code(c.call("DescribeCloudTranscription", params, "ap-tokyo")) == "UnsupportedRegion"
