"""The client: signed requests, typed results, retries that each spend a budget token."""

from __future__ import annotations

import json
import random

import pytest
import requests
import responses
from prometheus_client import CollectorRegistry

from trtc_exporter.api import signing
from trtc_exporter.api.budget import Budget, RateLimiter
from trtc_exporter.api.client import TrtcClient, host_of, request_params
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.clock import FakeClock
from trtc_exporter.metrics import ApiMetrics
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target

ENDPOINT = "http://127.0.0.1:8080"
AI = "DescribeAITranscription"
TASK = Target(api="ai_transcription", region="ap-guangzhou", task_id="task-1")
SESSION = Target(api="ai_transcription", region="ap-singapore", sdk_app_id=1400000001,
                 session_id="room-42")
CLOUD = Target(api="cloud_transcription", region="ap-hongkong", task_id="c-1",
               sdk_app_id=1400000001)


class CountingLimiter(RateLimiter):
    """A real limiter that also counts reservations, to prove every attempt took a token."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.reservations = 0

    def acquire(self, cancel: object = None) -> float:
        self.reservations += 1
        return super().acquire(cancel)  # type: ignore[arg-type]


class CountingBudget(Budget):
    def __init__(self, clock: FakeClock) -> None:
        super().__init__({}, clock)
        self._limiters = {a: CountingLimiter(20, clock, name=a)
                          for a in (AI, "DescribeCloudTranscription")}


def ok(status: str = "InProgress", **extra: object) -> dict[str, object]:
    return {"Response": {"Status": status, "StartTime": "2026-11-24 18:00:00", "TaskId": "task-1",
                         "RequestId": "req-1", **extra}}


def error(code: str, message: str = "m") -> dict[str, object]:
    return {"Response": {"Error": {"Code": code, "Message": message}, "RequestId": "req-e"}}


@pytest.fixture
def env() -> dict[str, object]:
    clock = FakeClock(1795514400.0, auto_advance=True)
    registry = CollectorRegistry()
    budget = CountingBudget(clock)
    creds = StaticProvider(Credentials(Secret("AKIDtest"), Secret("keytest")), "env")
    client = TrtcClient(endpoint=ENDPOINT, credentials=creds, budget=budget,
                        metrics=ApiMetrics(registry), clock=clock, max_retries=2,
                        rng=random.Random(1))
    return {"clock": clock, "registry": registry, "budget": budget, "client": client,
            "creds": creds}


def sample(env: dict[str, object], name: str, **labels: str) -> float:
    registry = env["registry"]
    assert isinstance(registry, CollectorRegistry)
    return registry.get_sample_value(name, labels) or 0.0


@responses.activate
def test_request_is_signed_like_the_sdk(env: dict[str, object]) -> None:
    """Headers and Authorization equal what signing.sign gives for the same body and time."""
    responses.post(ENDPOINT + "/", json=ok())
    env["client"].describe(TASK)  # type: ignore[attr-defined]
    sent = responses.calls[0].request
    body = sent.body if isinstance(sent.body, bytes) else sent.body.encode()
    assert body == b'{"TaskId": "task-1"}'
    expected = signing.sign(secret_id="AKIDtest", secret_key="keytest", host="127.0.0.1:8080",
                            payload=body, timestamp=1795514400)
    assert sent.headers["Authorization"] == expected.authorization
    assert sent.headers["Host"] == "127.0.0.1:8080"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-TC-Action"] == AI
    assert sent.headers["X-TC-Version"] == "2019-07-22"
    assert sent.headers["X-TC-Region"] == "ap-guangzhou"
    assert sent.headers["X-TC-Timestamp"] == "1795514400"
    assert "X-TC-Token" not in sent.headers


def test_request_bodies_per_target_kind() -> None:
    """Session lookups send TaskId "", 2.0 sends SdkAppId and TaskId."""
    assert request_params(TASK) == {"TaskId": "task-1"}
    assert request_params(SESSION) == {"TaskId": "", "SdkAppId": 1400000001,
                                       "SessionId": "room-42"}
    assert request_params(CLOUD) == {"SdkAppId": 1400000001, "TaskId": "c-1"}


def test_signed_host_keeps_non_default_ports_only() -> None:
    """The signed Host carries the port only when it is not the scheme's default."""
    assert host_of("https://trtc.tencentcloudapi.com") == "trtc.tencentcloudapi.com"
    assert host_of("https://trtc.tencentcloudapi.com:443") == "trtc.tencentcloudapi.com"
    assert host_of("http://127.0.0.1:8080/") == "127.0.0.1:8080"
    assert host_of("http://[::1]:9000") == "[::1]:9000"


@responses.activate
def test_session_token_is_sent_unsigned(env: dict[str, object]) -> None:
    """Temporary credentials add X-TC-Token; the signature still covers only content-type;host."""
    client = env["client"]
    assert isinstance(client, TrtcClient)
    client.set_credentials(StaticProvider(
        Credentials(Secret("AKIDtmp"), Secret("k"), Secret("tok-123")), "env"))
    responses.post(ENDPOINT + "/", json=ok())
    client.describe(TASK)
    sent = responses.calls[0].request
    assert sent.headers["X-TC-Token"] == "tok-123"
    assert "SignedHeaders=content-type;host" in sent.headers["Authorization"]


@responses.activate
def test_success_is_typed_and_measured(env: dict[str, object]) -> None:
    """A good answer returns TaskStatus and is observed once in the latency histogram."""
    responses.post(ENDPOINT + "/", json=ok("Preparing"))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert isinstance(outcome.result, TaskStatus)
    assert outcome.result.status == "Preparing"
    assert outcome.attempts == 1
    labels = {"action": AI, "region": "ap-guangzhou"}
    assert sample(env, "trtc_api_request_duration_seconds_count", **labels) == 1
    assert sample(env, "trtc_api_requests_total", **labels) == 1


@responses.activate
def test_retries_spend_a_token_each_and_are_counted(env: dict[str, object]) -> None:
    """Two InternalErrors then success: three attempts, three tokens, two errors, two retries."""
    responses.post(ENDPOINT + "/", json=error("InternalError"))
    responses.post(ENDPOINT + "/", json=error("InternalError"))
    responses.post(ENDPOINT + "/", json=ok())
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert isinstance(outcome.result, TaskStatus)
    assert outcome.attempts == 3
    budget = env["budget"]
    assert isinstance(budget, CountingBudget)
    assert budget.limiter(AI).reservations == 3  # type: ignore[attr-defined]
    labels = {"action": AI, "region": "ap-guangzhou"}
    assert sample(env, "trtc_api_errors_total", code="InternalError", **labels) == 2
    assert sample(env, "trtc_api_retries_total", **labels) == 2
    assert sample(env, "trtc_api_request_duration_seconds_count", **labels) == 3


@responses.activate
def test_retries_are_capped(env: dict[str, object]) -> None:
    """A server that always fails is tried 1 + max_retries times, ending with HTTP5xx."""
    responses.post(ENDPOINT + "/", body="<html>bad gateway</html>", status=502)
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert isinstance(outcome.result, ApiFailure)
    assert outcome.result.code == "HTTP5xx"
    assert outcome.attempts == 3
    assert len(responses.calls) == 3


@pytest.mark.parametrize("code", ["AuthFailure.SignatureFailure", "FailedOperation.TaskNotExist",
                                  "InvalidParameter.TaskId", "UnauthorizedOperation"])
@responses.activate
def test_permanent_errors_are_not_retried(env: dict[str, object], code: str) -> None:
    """Auth, not-found and bad-parameter answers are final after one attempt."""
    responses.post(ENDPOINT + "/", json=error(code))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.attempts == 1
    assert outcome.result.code == code


@responses.activate
def test_throttling_is_counted_and_cuts_the_rate(env: dict[str, object]) -> None:
    """RequestLimitExceeded counts as throttled and lowers the action's effective rate."""
    message = "Your current request times equals to `21` in a second, which exceeds the " \
              "frequency limit `10` for a second."
    responses.post(ENDPOINT + "/", json=error("RequestLimitExceeded", message))
    responses.post(ENDPOINT + "/", json=ok())
    env["client"].describe(TASK)  # type: ignore[attr-defined]
    labels = {"action": AI, "region": "ap-guangzhou"}
    assert sample(env, "trtc_api_throttled_total", **labels) == 1
    budget = env["budget"]
    assert isinstance(budget, Budget)
    assert budget.limiter(AI).effective_rate == pytest.approx(10, abs=0.5)


@pytest.mark.parametrize(("exc", "code"), [
    (requests.ReadTimeout("slow"), "Timeout"), (requests.ConnectTimeout("x"), "Timeout"),
    (requests.ConnectionError("reset"), "ConnectionError"),
])
@responses.activate
def test_transport_failures_get_transport_codes(env: dict[str, object], exc: Exception,
                                                code: str) -> None:
    """Timeouts and connection errors are reported under the bounded transport codes."""
    responses.post(ENDPOINT + "/", body=exc)
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.result.code == code
    labels = {"action": AI, "region": "ap-guangzhou", "code": code}
    assert sample(env, "trtc_api_errors_total", **labels) == 3


@responses.activate
def test_huge_body_is_rejected(env: dict[str, object]) -> None:
    """A body over the cap is InvalidResponse instead of being held in memory."""
    responses.post(ENDPOINT + "/", body=b"x" * (2 << 20), status=200)
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.result.code == "InvalidResponse"


@responses.activate
def test_unknown_codes_are_labelled_other(env: dict[str, object]) -> None:
    """A code outside the allow-list is counted as Other, keeping label cardinality bounded."""
    responses.post(ENDPOINT + "/", json=error("Brand.NewCode"))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.result.code == "Brand.NewCode"
    labels = {"action": AI, "region": "ap-guangzhou", "code": "Other"}
    assert sample(env, "trtc_api_errors_total", **labels) == 1


@responses.activate
def test_date_header_feeds_the_skew_estimate(env: dict[str, object]) -> None:
    """A server Date 120 s ahead of the local clock shows as about +120 s skew."""
    responses.post(ENDPOINT + "/", json=ok(),
                   headers={"Date": "Tue, 24 Nov 2026 10:02:00 GMT"})
    client = env["client"]
    assert isinstance(client, TrtcClient)
    client.describe(TASK)
    assert client.skew.seconds == pytest.approx(120.5, abs=1)


@responses.activate
def test_cloud_request_uses_its_own_action(env: dict[str, object]) -> None:
    """A 2.0 target calls DescribeCloudTranscription with its integer StartTime parsed."""
    responses.post(ENDPOINT + "/", json={"Response": {
        "Status": "Exited", "StartTime": 1795514400, "TaskId": "c-1", "RequestId": "r"}})
    outcome = env["client"].describe(CLOUD)  # type: ignore[attr-defined]
    assert responses.calls[0].request.headers["X-TC-Action"] == "DescribeCloudTranscription"
    assert json.loads(responses.calls[0].request.body) == {"SdkAppId": 1400000001, "TaskId": "c-1"}
    assert outcome.result.status == "Exited"
    assert outcome.result.start_time == 1795514400.0
