"""API semantics of the simulator: envelope, checks, the six actions (pure, FakeClock)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import SimulatorAPI, parse_scenario, signed_headers

SID, KEY = "AKIDsimtest", "simtestkey"
T0 = 1_795_514_400.0
EXAMPLES = Path(__file__).parents[1] / "fixtures" / "api_examples"


def _scenario(**extra: Any) -> dict[str, Any]:
    return {
        "credentials": [{"secret_id": SID, "secret_key": KEY}],
        "tasks": [
            {"task_id": "ai-1", "sdk_app_id": 1400000001, "session_id": "room-1",
             "phases": {"idle": 2, "preparing": 3, "in_progress": 10, "stopped": 5}},
            {"task_id": "ai-plain", "sdk_app_id": 1400000001},
            {"task_id": "ai-sg", "sdk_app_id": 1400000001, "region": "ap-singapore",
             "start_offset": -100, "phases": {"in_progress": "forever"}},
            {"task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": 1400000002,
             "region": "ap-hongkong", "phases": {"idle": 1, "in_progress": 10, "exited": 4}},
        ],
        **extra,
    }  # fmt: skip


class Client:
    """Signs and sends requests straight into SimulatorAPI.handle."""

    def __init__(self, **extra: Any) -> None:
        self.clock = FakeClock(T0)
        self.api = SimulatorAPI(parse_scenario(_scenario(**extra)), self.clock)

    def raw(self, action: str, body: bytes, region: str = "ap-guangzhou", **kw: Any) -> Any:
        headers = signed_headers(secret_id=SID, secret_key=KEY, host="sim.local", action=action,
                                 body=body, timestamp=int(self.clock.time()), region=region,
                                 **kw)  # fmt: skip
        return self.api.handle("POST", headers, body)

    def call(self, action: str, params: Any, region: str = "ap-guangzhou", **kw: Any) -> Any:
        result = self.raw(action, json.dumps(params).encode(), region, **kw)
        assert result.status == 200
        return json.loads(result.body)["Response"]


def _code(response: dict[str, Any]) -> str | None:
    return response["Error"]["Code"] if "Error" in response else None


def _shape(value: Any) -> Any:
    """The key structure of a JSON document, values replaced by their type."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    return type(value).__name__


@pytest.mark.parametrize("name", ["describe_idle", "describe_inprogress_by_session"])
def test_describe_answers_have_the_shape_of_the_documented_examples(name: str) -> None:
    """Success bodies carry exactly the fields (and types) of the API's example answers."""
    c = Client()
    if name == "describe_idle":
        got = c.call("DescribeAITranscription", {"TaskId": "ai-plain"})
    else:
        c.clock.advance(6)
        got = c.call("DescribeAITranscription",
                     {"TaskId": "", "SdkAppId": 1400000001, "SessionId": "room-1"})  # fmt: skip
    expected = json.loads((EXAMPLES / f"{name}.json").read_text())["Response"]
    assert _shape(got) == _shape(expected)


def test_start_time_is_beijing_time_with_microseconds() -> None:
    """1.0 StartTime is 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC+8 without a zone."""
    got = Client().call("DescribeAITranscription", {"TaskId": "ai-1"})["StartTime"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", got)
    beijing = timezone(timedelta(hours=8))
    parsed = datetime.strptime(got, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=beijing)
    assert parsed.timestamp() == T0


def test_describe_follows_the_lifecycle_until_task_not_exist() -> None:
    """Polling every second shows each 1.0 status in turn and then FailedOperation.TaskNotExist."""
    c = Client()
    seen = []
    for _ in range(21):
        r = c.call("DescribeAITranscription", {"TaskId": "ai-1"})
        seen.append(_code(r) or r["Status"])
        c.clock.advance(1)
    assert seen == (["Idle"] * 2 + ["Preparing"] * 3 + ["InProgress"] * 10 + ["Stopped"] * 5
                    + ["FailedOperation.TaskNotExist"])  # fmt: skip


def test_tasks_exist_only_in_their_region_and_generation() -> None:
    """A task is unknown in another region and through the other API generation."""
    c = Client()
    assert _code(c.call("DescribeAITranscription", {"TaskId": "ai-sg"})) == (
        "FailedOperation.TaskNotExist"
    )
    assert c.call("DescribeAITranscription", {"TaskId": "ai-sg"}, "ap-singapore")["Status"] == (
        "InProgress"
    )
    r = c.call("DescribeAITranscription", {"TaskId": "cloud-1"}, "ap-singapore")
    assert _code(r) == "FailedOperation.TaskNotExist"


def test_describe_cloud_answers_integer_start_time_and_errors_after_the_end() -> None:
    """2.0 StartTime is integer epoch seconds; a wrong SdkAppId or an ended task is an error."""
    c = Client()
    params = {"SdkAppId": 1400000002, "TaskId": "cloud-1"}
    r = c.call("DescribeCloudTranscription", params, "ap-hongkong")
    assert r["StartTime"] == int(T0) and r["Status"] == "Idle" and r["TaskId"] == "cloud-1"
    c.clock.advance(11)
    assert c.call("DescribeCloudTranscription", params, "ap-hongkong")["Status"] == "Exited"
    wrong_app = {"SdkAppId": 1400000001, "TaskId": "cloud-1"}
    assert _code(c.call("DescribeCloudTranscription", wrong_app, "ap-hongkong")) == (
        "FailedOperation.TaskNotExist"
    )
    c.clock.advance(4)
    assert _code(c.call("DescribeCloudTranscription", params, "ap-hongkong")) == (
        "FailedOperation.TaskNotExist"
    )


def test_cloud_start_time_can_be_switched_to_milliseconds() -> None:
    """cloud_start_time_ms mimics the Chinese doc example, which shows epoch milliseconds."""
    c = Client(cloud_start_time_ms=True)
    r = c.call("DescribeCloudTranscription", {"SdkAppId": 1400000002, "TaskId": "cloud-1"},
               "ap-hongkong")  # fmt: skip
    assert r["StartTime"] == int(T0 * 1000)


def test_start_describe_stop_roundtrip_for_1_0() -> None:
    """A started 1.0 task is found by TaskId and SessionId, and Stop moves it to Stopped."""
    c = Client()
    start = {"SdkAppId": 1400000009, "RoomId": "42", "SessionId": "s-9",
             "TranscriptionParams": {"UserId": "robot", "UserSig": "sig"}}  # fmt: skip
    task_id = c.call("StartAITranscription", start)["TaskId"]
    assert task_id.startswith("v2_")
    assert _code(c.call("StartAITranscription", start)) == "FailedOperation.TaskExist"
    c.clock.advance(1.5)
    by_session = {"TaskId": "", "SdkAppId": 1400000009, "SessionId": "s-9"}
    assert c.call("DescribeAITranscription", by_session)["Status"] == "Preparing"
    assert set(c.call("StopAITranscription", {"TaskId": task_id})) == {"RequestId"}
    r = c.call("DescribeAITranscription", {"TaskId": task_id})
    assert (r["Status"], r["SessionId"]) == ("Stopped", "s-9")


def test_started_1_0_task_ends_by_itself_after_ten_hours() -> None:
    """A 1.0 task that is never stopped is gone after its 10 h lifetime."""
    c = Client()
    start = {"SdkAppId": 1, "RoomId": "1", "TranscriptionParams": {"UserId": "u", "UserSig": "s"}}
    task_id = c.call("StartAITranscription", start)["TaskId"]
    c.clock.advance(10 * 3600 - 10)
    assert c.call("DescribeAITranscription", {"TaskId": task_id})["Status"] == "InProgress"
    c.clock.advance(10)
    assert c.call("DescribeAITranscription", {"TaskId": task_id})["Status"] == "Stopped"
    c.clock.advance(5)
    assert _code(c.call("DescribeAITranscription", {"TaskId": task_id})) == (
        "FailedOperation.TaskNotExist"
    )


def test_create_describe_delete_roundtrip_for_2_0() -> None:
    """A created 2.0 task runs until DeleteCloudTranscription, shows Exited, then is gone."""
    c = Client()
    create = {
        "SdkAppId": 1400000002, "RoomId": "room", "RoomIdType": 1, "AsrParam": {},
        "TranscriptionParam": {"UserId": "robot", "UserSig": "s"},
    }  # fmt: skip
    task_id = c.call("CreateCloudTranscription", create, "ap-singapore")["TaskId"]
    assert _code(c.call("CreateCloudTranscription", create, "ap-singapore")) == (
        "FailedOperation.TaskExist"
    )
    params = {"SdkAppId": 1400000002, "TaskId": task_id}
    c.clock.advance(3600)
    assert c.call("DescribeCloudTranscription", params, "ap-singapore")["Status"] == "InProgress"
    assert c.call("DeleteCloudTranscription", params, "ap-singapore")["TaskId"] == task_id
    assert c.call("DescribeCloudTranscription", params, "ap-singapore")["Status"] == "Exited"
    c.clock.advance(5)
    assert _code(c.call("DescribeCloudTranscription", params, "ap-singapore")) == (
        "FailedOperation.TaskNotExist"
    )


def test_app_quota_refuses_one_task_too_many() -> None:
    """With max_concurrent_tasks 2, the third Start of the app is ResourceInsufficient."""
    c = Client(apps={1400000005: {"max_concurrent_tasks": 2}})
    codes = [
        _code(c.call("StartAITranscription", {"SdkAppId": 1400000005, "RoomId": str(i),
              "TranscriptionParams": {"UserId": "u", "UserSig": "s"}}))
        for i in range(3)
    ]  # fmt: skip
    assert codes == [None, None, "ResourceInsufficient.RequestRejection"]


def test_rate_limit_error_uses_the_real_message_forms() -> None:
    """The 21st request in a second gets RequestLimitExceeded worded like the real API."""
    c = Client()
    for _ in range(20):
        assert _code(c.call("DescribeAITranscription", {"TaskId": "ai-1"})) is None
    error = c.call("DescribeAITranscription", {"TaskId": "ai-1"})["Error"]
    expected = json.loads((EXAMPLES / "error_request_limit_exceeded.json").read_text())
    assert error == expected["Response"]["Error"]
    zh = c.call("DescribeAITranscription", {"TaskId": "ai-1"}, language="zh-CN")["Error"]
    assert zh["Message"] == "您当前每秒请求 `22` 次，超过了每秒频率上限 `20`，请稍后重试。"  # noqa: RUF001


def test_rate_limit_per_action_from_the_scenario() -> None:
    """rate_limits in the scenario override the default for one action only."""
    c = Client(rate_limits={"DescribeAITranscription": 2})
    codes = [_code(c.call("DescribeAITranscription", {"TaskId": "ai-1"})) for _ in range(3)]
    assert codes == [None, None, "RequestLimitExceeded"]
    params = {"SdkAppId": 1400000002, "TaskId": "cloud-1"}
    assert _code(c.call("DescribeCloudTranscription", params, "ap-hongkong")) is None


def test_stats_count_per_action_and_code() -> None:
    """Every answer is counted under its action and its code, Success for good answers."""
    c = Client()
    c.call("DescribeAITranscription", {"TaskId": "ai-1"})
    c.call("DescribeAITranscription", {"TaskId": "nope"})
    stats = c.api.stats.to_json(c.api.limiter.admitted_peaks(), c.api.limits())
    assert stats["by_action"]["DescribeAITranscription"] == {
        "Success": 1,
        "FailedOperation.TaskNotExist": 1,
    }
    assert stats["per_second"]["DescribeAITranscription"] == {str(int(T0)): 2}
    assert stats["windows"][0]["max_in_window"] == 2


def test_plain_limit_message_states_no_numbers() -> None:
    """With limit_message: plain, RequestLimitExceeded carries no count and no limit."""
    c = Client(limit_message="plain", rate_limits={"DescribeAITranscription": 2})
    codes = [c.call("DescribeAITranscription", {"TaskId": "ai-1"}) for _ in range(3)]
    error = codes[-1]["Error"]
    assert error["Code"] == "RequestLimitExceeded"
    assert not re.search(r"\d", error["Message"])


def test_plain_limit_message_also_words_the_request_limit_storm() -> None:
    """The storm fault's RequestLimitExceeded follows the plain wording too."""
    c = Client(limit_message="plain", faults=[{"kind": "request_limit_storm"}])
    error = c.call("DescribeAITranscription", {"TaskId": "ai-1"})["Error"]
    assert error["Code"] == "RequestLimitExceeded" and not re.search(r"\d", error["Message"])


def test_counting_throttled_requests_keeps_an_overloading_client_out() -> None:
    """With count_throttled, refused requests fill the window: 12/s against 10 is all refused."""
    c = Client(count_throttled=True, rate_limits={"DescribeAITranscription": 10})
    codes = []
    for _ in range(36):
        codes.append(_code(c.call("DescribeAITranscription", {"TaskId": "ai-1"})))
        c.clock.advance(1 / 12)
    assert codes[:10] == [None] * 10
    assert codes[12:] == ["RequestLimitExceeded"] * 24


def test_limit_message_must_be_numbers_or_plain() -> None:
    """An unknown limit_message is a scenario error naming the field."""
    with pytest.raises(ValueError, match="limit_message: must be numbers or plain"):
        parse_scenario(_scenario(limit_message="vague"))
