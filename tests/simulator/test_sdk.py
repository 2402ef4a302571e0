"""The official Tencent Cloud Python SDK talks to the simulator as to the real endpoint.

Needs ``tencentcloud-sdk-python-trtc`` (test extra); skipped with the reason when it is absent.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trtc_exporter.simulator import SimulatorServer, parse_scenario

credential = pytest.importorskip(
    "tencentcloud.common.credential",
    reason="tencentcloud-sdk-python-trtc is not installed (the official SDK, a test extra)",
)
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (  # noqa: E402
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile  # noqa: E402
from tencentcloud.common.profile.http_profile import HttpProfile  # noqa: E402
from tencentcloud.trtc.v20190722 import models, trtc_client  # noqa: E402

SCENARIO = {
    "credentials": [
        {"secret_id": "AKIDsdk", "secret_key": "sdkkey"},
        {"secret_id": "AKIDsts", "secret_key": "stskey", "token": "ststoken"},
    ],
    "tasks": [
        {"task_id": "-m97l2+sdk.task_", "sdk_app_id": 1400000001, "session_id": "会议-1",
         "start_offset": -30, "phases": {"idle": 1, "preparing": 1, "in_progress": "forever"}},
        {"task_id": "cloud-sdk", "api": "cloud_transcription", "sdk_app_id": 1400000002,
         "region": "ap-hongkong", "start_offset": -30},
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer.from_scenario(parse_scenario(SCENARIO)) as server:
        yield server


def _client(sim: SimulatorServer, region: str = "ap-guangzhou", **cred: Any) -> Any:
    # HttpProfile takes protocol= (it sets .scheme from it); keepAlive exercises HTTP/1.1 reuse.
    http = HttpProfile(protocol="http", endpoint=sim.url.removeprefix("http://"), reqTimeout=5,
                       keepAlive=True)  # fmt: skip
    profile = ClientProfile(httpProfile=http)
    secret = cred or {"secret_id": "AKIDsdk", "secret_key": "sdkkey"}
    return trtc_client.TrtcClient(credential.Credential(**secret), region, profile)


def test_sdk_describe_by_task_id(sim: SimulatorServer) -> None:
    """TrtcClient.DescribeAITranscription gets Status, StartTime and TaskId from the simulator."""
    req = models.DescribeAITranscriptionRequest()
    req.TaskId = "-m97l2+sdk.task_"
    resp = _client(sim).DescribeAITranscription(req)
    assert (resp.Status, resp.TaskId) == ("InProgress", "-m97l2+sdk.task_")
    assert resp.SessionId == "会议-1"
    assert len(resp.StartTime) == len("2026-11-24 18:00:00.120457")
    assert resp.RequestId


def test_sdk_describe_by_session_with_temporary_credentials(sim: SimulatorServer) -> None:
    """A session lookup signed with an STS-style token (X-TC-Token) is answered."""
    req = models.DescribeAITranscriptionRequest()
    req.TaskId, req.SdkAppId, req.SessionId = "", 1400000001, "会议-1"
    client = _client(sim, secret_id="AKIDsts", secret_key="stskey", token="ststoken")
    assert client.DescribeAITranscription(req).TaskId == "-m97l2+sdk.task_"


def test_sdk_describe_cloud_transcription(sim: SimulatorServer) -> None:
    """TrtcClient.DescribeCloudTranscription (2.0) gets an integer StartTime."""
    req = models.DescribeCloudTranscriptionRequest()
    req.SdkAppId, req.TaskId = 1400000002, "cloud-sdk"
    resp = _client(sim, "ap-hongkong").DescribeCloudTranscription(req)
    assert resp.Status == "InProgress" and isinstance(resp.StartTime, int)


def test_sdk_raises_the_api_error_code(sim: SimulatorServer) -> None:
    """An unknown task surfaces in the SDK as TencentCloudSDKException with the API's code."""
    req = models.DescribeAITranscriptionRequest()
    req.TaskId = "no-such-task"
    with pytest.raises(TencentCloudSDKException) as info:
        _client(sim).DescribeAITranscription(req)
    assert info.value.get_code() == "FailedOperation.TaskNotExist"
    assert info.value.get_request_id()


def test_sdk_wrong_key_is_signature_failure(sim: SimulatorServer) -> None:
    """A wrong SecretKey is rejected as AuthFailure.SignatureFailure."""
    req = models.DescribeAITranscriptionRequest()
    req.TaskId = "-m97l2+sdk.task_"
    with pytest.raises(TencentCloudSDKException) as info:
        _client(sim, secret_id="AKIDsdk", secret_key="wrong").DescribeAITranscription(req)
    assert info.value.get_code() == "AuthFailure.SignatureFailure"
