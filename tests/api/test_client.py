"""The client: signed requests, typed results, retries that each spend a budget token."""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from tests.apimock import SERVER, ApiMock
from trtc_exporter.api import signing
from trtc_exporter.api.budget import Budget, RateLimiter
from trtc_exporter.api.client import TrtcClient, host_of
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.clock import FakeClock
from trtc_exporter.metrics import ApiMetrics
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target

ENDPOINT = SERVER.endpoint  # the local API stand-in (tests/apimock.py)
HOST = ENDPOINT.removeprefix("http://")
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
def api() -> Iterator[ApiMock]:
    with ApiMock() as mock:
        yield mock


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


def test_request_is_signed_like_the_sdk(api: ApiMock, env: dict[str, object]) -> None:
    """Headers and Authorization equal what signing.sign gives for the same body and time."""
    api.post(ENDPOINT + "/", json=ok())
    env["client"].describe(TASK)  # type: ignore[attr-defined]
    sent = api.calls[0].request
    body = sent.body if isinstance(sent.body, bytes) else sent.body.encode()
    assert body == b'{"TaskId": "task-1"}'
    expected = signing.sign(secret_id="AKIDtest", secret_key="keytest", host=HOST,
                            payload=body, timestamp=1795514400)
    assert sent.headers["Authorization"] == expected.authorization
    assert sent.headers["Host"] == HOST
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["X-TC-Action"] == AI
    assert sent.headers["X-TC-Version"] == "2019-07-22"
    assert sent.headers["X-TC-Region"] == "ap-guangzhou"
    assert sent.headers["X-TC-Timestamp"] == "1795514400"
    assert "X-TC-Token" not in sent.headers


def test_request_bodies_per_target_kind() -> None:
    """Session lookups send TaskId "", 2.0 sends SdkAppId and TaskId."""
    assert json.loads(TASK.body) == {"TaskId": "task-1"}
    assert json.loads(SESSION.body) == {"TaskId": "", "SdkAppId": 1400000001,
                                       "SessionId": "room-42"}
    assert json.loads(CLOUD.body) == {"SdkAppId": 1400000001, "TaskId": "c-1"}


def test_signed_host_keeps_non_default_ports_only() -> None:
    """The signed Host carries the port only when it is not the scheme's default."""
    assert host_of("https://trtc.tencentcloudapi.com") == "trtc.tencentcloudapi.com"
    assert host_of("https://trtc.tencentcloudapi.com:443") == "trtc.tencentcloudapi.com"
    assert host_of("http://127.0.0.1:8080/") == "127.0.0.1:8080"
    assert host_of("http://[::1]:9000") == "[::1]:9000"


def test_session_token_is_sent_unsigned(api: ApiMock, env: dict[str, object]) -> None:
    """Temporary credentials add X-TC-Token; the signature still covers only content-type;host."""
    client = env["client"]
    assert isinstance(client, TrtcClient)
    client.set_credentials(StaticProvider(
        Credentials(Secret("AKIDtmp"), Secret("k"), Secret("tok-123")), "env"))
    api.post(ENDPOINT + "/", json=ok())
    client.describe(TASK)
    sent = api.calls[0].request
    assert sent.headers["X-TC-Token"] == "tok-123"
    assert "SignedHeaders=content-type;host" in sent.headers["Authorization"]


def test_success_is_typed_and_measured(api: ApiMock, env: dict[str, object]) -> None:
    """A good answer returns TaskStatus and is observed once in the latency histogram."""
    api.post(ENDPOINT + "/", json=ok("Preparing"))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert isinstance(outcome.result, TaskStatus)
    assert outcome.result.status == "Preparing"
    assert outcome.attempts == 1
    labels = {"action": AI, "region": "ap-guangzhou"}
    assert sample(env, "trtc_api_request_duration_seconds_count", **labels) == 1
    assert sample(env, "trtc_api_requests_total", **labels) == 1


def test_retries_spend_a_token_each_and_are_counted(api: ApiMock, env: dict[str, object]) -> None:
    """Two InternalErrors then success: three attempts, three tokens, two errors, two retries."""
    api.post(ENDPOINT + "/", json=error("InternalError"))
    api.post(ENDPOINT + "/", json=error("InternalError"))
    api.post(ENDPOINT + "/", json=ok())
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


def test_retries_are_capped(api: ApiMock, env: dict[str, object]) -> None:
    """A server that always fails is tried 1 + max_retries times, ending with HTTP5xx."""
    api.post(ENDPOINT + "/", body="<html>bad gateway</html>", status=502)
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert isinstance(outcome.result, ApiFailure)
    assert outcome.result.code == "HTTP5xx"
    assert outcome.attempts == 3
    assert len(api.calls) == 3


@pytest.mark.parametrize("code", ["AuthFailure.SignatureFailure", "FailedOperation.TaskNotExist",
                                  "InvalidParameter.TaskId", "UnauthorizedOperation"])
def test_permanent_errors_are_not_retried(api: ApiMock, env: dict[str, object], code: str) -> None:
    """Auth, not-found and bad-parameter answers are final after one attempt."""
    api.post(ENDPOINT + "/", json=error(code))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.attempts == 1
    assert outcome.result.code == code


def test_throttling_is_counted_and_cuts_the_rate(api: ApiMock, env: dict[str, object]) -> None:
    """RequestLimitExceeded counts as throttled and lowers the action's effective rate."""
    message = "Your current request times equals to `21` in a second, which exceeds the " \
              "frequency limit `10` for a second."
    api.post(ENDPOINT + "/", json=error("RequestLimitExceeded", message))
    api.post(ENDPOINT + "/", json=ok())
    env["client"].describe(TASK)  # type: ignore[attr-defined]
    labels = {"action": AI, "region": "ap-guangzhou"}
    assert sample(env, "trtc_api_throttled_total", **labels) == 1
    budget = env["budget"]
    assert isinstance(budget, Budget)
    assert budget.limiter(AI).effective_rate == pytest.approx(10, abs=0.5)


def client_at(env: dict[str, object], endpoint: str, timeout: float = 6.0) -> TrtcClient:
    """A client like ``env``'s (same budget, metrics and clock) for another endpoint."""
    base = env["client"]
    assert isinstance(base, TrtcClient)
    return TrtcClient(endpoint=endpoint, credentials=env["creds"],  # type: ignore[arg-type]
                      budget=env["budget"], metrics=base.metrics,  # type: ignore[arg-type]
                      clock=env["clock"], timeout=timeout,  # type: ignore[arg-type]
                      max_retries=2, rng=random.Random(1))


def assert_transport_failure(env: dict[str, object], client: TrtcClient, code: str) -> None:
    outcome = client.describe(TASK)
    assert isinstance(outcome.result, ApiFailure)
    assert outcome.result.code == code
    labels = {"action": AI, "region": "ap-guangzhou", "code": code}
    assert sample(env, "trtc_api_errors_total", **labels) == 3


def test_no_answer_in_time_is_a_timeout(api: ApiMock, env: dict[str, object]) -> None:
    """An API that does not answer within the timeout fails each attempt as Timeout."""
    release = threading.Event()
    api.add_callback("POST", ENDPOINT + "/",
                     lambda _request: (release.wait(10), (200, {}, json.dumps(ok())))[1])
    try:
        assert_transport_failure(env, client_at(env, ENDPOINT, timeout=0.2), "Timeout")
    finally:
        release.set()


def test_cut_connection_is_a_connection_error(api: ApiMock, env: dict[str, object]) -> None:
    """A connection closed before the answer (a reset, a crashed proxy) is ConnectionError."""
    api.add_callback("POST", ENDPOINT + "/", lambda _request: None)
    assert_transport_failure(env, client_at(env, ENDPOINT), "ConnectionError")


def test_refused_connection_is_a_connection_error(env: dict[str, object]) -> None:
    """Nothing listening at the endpoint is ConnectionError (urllib3 files it as a timeout)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert_transport_failure(env, client_at(env, f"http://127.0.0.1:{port}"), "ConnectionError")


def test_connect_timeout_is_a_timeout(env: dict[str, object]) -> None:
    """A server whose accept queue is full never completes the handshake: Timeout."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port), timeout=1):  # fills the queue
            assert_transport_failure(env, client_at(env, f"http://127.0.0.1:{port}", 0.2),
                                     "Timeout")


def test_huge_body_is_rejected(api: ApiMock, env: dict[str, object]) -> None:
    """A body over the cap is InvalidResponse instead of being held in memory."""
    api.post(ENDPOINT + "/", body=b"x" * (2 << 20), status=200)
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.result.code == "InvalidResponse"


def test_unknown_codes_are_labelled_other(api: ApiMock, env: dict[str, object]) -> None:
    """A code outside the allow-list is counted as Other, keeping label cardinality bounded."""
    api.post(ENDPOINT + "/", json=error("Brand.NewCode"))
    outcome = env["client"].describe(TASK)  # type: ignore[attr-defined]
    assert outcome.result.code == "Brand.NewCode"
    labels = {"action": AI, "region": "ap-guangzhou", "code": "Other"}
    assert sample(env, "trtc_api_errors_total", **labels) == 1


def test_date_header_feeds_the_skew_estimate(api: ApiMock, env: dict[str, object]) -> None:
    """A server Date 120 s ahead of the local clock shows as about +120 s skew."""
    api.post(ENDPOINT + "/", json=ok(),
                   headers={"Date": "Tue, 24 Nov 2026 10:02:00 GMT"})
    client = env["client"]
    assert isinstance(client, TrtcClient)
    client.describe(TASK)
    assert client.skew.seconds == pytest.approx(120.5, abs=1)


def test_cloud_request_uses_its_own_action(api: ApiMock, env: dict[str, object]) -> None:
    """A 2.0 target calls DescribeCloudTranscription with its integer StartTime parsed."""
    api.post(ENDPOINT + "/", json={"Response": {
        "Status": "Exited", "StartTime": 1795514400, "TaskId": "c-1", "RequestId": "r"}})
    outcome = env["client"].describe(CLOUD)  # type: ignore[attr-defined]
    assert api.calls[0].request.headers["X-TC-Action"] == "DescribeCloudTranscription"
    assert json.loads(api.calls[0].request.body) == {"SdkAppId": 1400000001, "TaskId": "c-1"}
    assert outcome.result.status == "Exited"
    assert outcome.result.start_time == 1795514400.0
