"""The simulator's TRTC event callbacks: bodies, signatures, lifecycle, retries, forged Sign."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.simulator import SimulatorAPI, SimulatorServer, parse_scenario
from trtc_exporter.simulator.callbacks import PLACEHOLDER_TEXT, sign
from trtc_exporter.simulator.scenario import ScenarioError
from trtc_exporter.simulator.sender import CallbackSender

VECTORS = json.loads((Path(__file__).parents[1] / "fixtures" / "callback_vectors.json").read_text())
APP, APP2 = 1400000001, 1400000002
KEY = "SimCallbackKey0123456789"
T0 = 1_795_514_400.0


class Receiver:
    """A local callback receiver on 127.0.0.1 that answers ``fail`` with 500, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail = 0
        self.arrived = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers.items()), body))
                outer.arrived.set()
                status = 500 if outer.fail > 0 else 200
                outer.fail -= 1
                self.send_response(status)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b'{"code":0}')

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhook/trtc"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    def types(self) -> list[int]:
        return [e["EventType"] for e in self.events()]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _scenario(url: str, **callbacks: Any) -> dict[str, Any]:
    return {
        "credentials": [{"secret_id": "AKIDcb", "secret_key": "cbkey"}],
        "tasks": [
            {"task_id": "ai-1", "sdk_app_id": APP, "session_id": "room-7",
             "phases": {"idle": 1, "preparing": 1, "in_progress": 30, "stopped": 5}},
            {"task_id": "cloud-1", "api": "cloud_transcription", "sdk_app_id": APP2,
             "phases": {"idle": 1, "in_progress": 15, "exited": 5}},
        ],
        "callbacks": {"url": url, "keys": {APP: KEY}, "sentences_per_minute": 6, **callbacks},
    }  # fmt: skip


def _sender(url: str, **callbacks: Any) -> tuple[CallbackSender, FakeClock]:
    clock = FakeClock(T0)
    api = SimulatorAPI(parse_scenario(_scenario(url, **callbacks)), clock)
    assert api.callbacks is not None
    return api.callbacks, clock


def _run(sender: CallbackSender, clock: FakeClock, seconds: int, step: float = 2.5) -> None:
    for _ in range(int(seconds / step)):
        clock.advance(step)
        sender.step()


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: str(json.loads(v["body"])["EventType"]))
def test_signature_matches_the_documented_formula_vectors(vector: dict[str, str]) -> None:
    """Sign is base64(HMAC-SHA256(key, raw body)) exactly as in the fixture vectors."""
    assert sign(vector["key"], vector["body"].encode("utf-8")) == vector["sign"]


def test_1_0_lifecycle_sends_start_sentences_and_stop_signed(receiver: Receiver) -> None:
    """A 1.0 task sends 901, a 903 every 10 s while InProgress, then 902; each is signed."""
    sender, clock = _sender(receiver.url)
    _run(sender, clock, 40)
    ai = [e for e in receiver.events() if e["EventInfo"]["TaskId"] == "ai-1"]
    assert [e["EventType"] for e in ai] == [901, 903, 903, 902]
    assert {e["EventGroupId"] for e in ai} == {9}
    assert ai[0]["EventInfo"]["Payload"] == {"Status": 0}
    assert ai[1]["EventInfo"]["Payload"]["Text"] == PLACEHOLDER_TEXT
    assert ai[0]["EventInfo"]["RoomId"] == "room-7" and ai[0]["EventInfo"]["RoomIdType"] == 1
    for headers, body in receiver.received:
        if headers["SdkAppId"] == str(APP):
            assert headers["Content-Type"] == "application/json"
            assert hmac.compare_digest(headers["Sign"], sign(KEY, body))


def test_2_0_lifecycle_uses_group_14_and_robot_id_and_no_sign_without_a_key(
    receiver: Receiver,
) -> None:
    """A 2.0 task sends 1401, 1403 and 1402 with RobotId; its app has no key, so no Sign."""
    sender, clock = _sender(receiver.url)
    _run(sender, clock, 40)
    cloud = [(h, json.loads(b)) for h, b in receiver.received if h["SdkAppId"] == str(APP2)]
    assert [e["EventType"] for _, e in cloud] == [1401, 1403, 1402]
    assert all(e["EventGroupId"] == 14 and "RobotId" in e["EventInfo"] for _, e in cloud)
    assert all("Sign" not in h for h, _ in cloud)


def test_silent_task_starts_but_never_sends_a_sentence(receiver: Receiver) -> None:
    """A silent task is InProgress (901) with no 903 until it stops (902)."""
    sender, clock = _sender(receiver.url, silent_tasks=["ai-1"])
    _run(sender, clock, 40)
    ai = [e["EventType"] for e in receiver.events() if e["EventInfo"]["TaskId"] == "ai-1"]
    assert ai == [901, 902]


def test_failed_start_sends_status_1_and_nothing_else(receiver: Receiver) -> None:
    """A failed start is one 901 with Payload.Status 1 and no sentences or stop."""
    sender, clock = _sender(receiver.url, failed_starts=["ai-1"])
    _run(sender, clock, 40)
    ai = [e for e in receiver.events() if e["EventInfo"]["TaskId"] == "ai-1"]
    assert [(e["EventType"], e["EventInfo"]["Payload"]) for e in ai] == [(901, {"Status": 1})]


def test_failed_delivery_is_retried_at_once_then_every_10_s_for_a_minute(
    receiver: Receiver,
) -> None:
    """The same event is resent at once, then at +10 s ... +60 s, with a fresh CallbackTs."""
    sender, clock = _sender(receiver.url, sentences_per_minute=0, failed_starts=["ai-1"])
    receiver.fail = 100
    sender.step()  # the failed start of ai-1 exists at once (idle)
    for _ in range(14):
        clock.advance(5)
        sender.step()
    starts = [e for e in receiver.events() if e["EventType"] == 901]
    assert len(starts) == 8  # at once twice, then +10, +20, +30, +40, +50, +60
    assert len({e["EventInfo"]["EventMsTs"] for e in starts}) == 1
    sent = [(e["CallbackTs"] - starts[0]["CallbackTs"]) / 1000 for e in starts]
    assert sent == [0, 0, 10, 20, 30, 40, 50, 60]
    assert sender.stats()["expired"] >= 1


def test_receiver_that_recovers_gets_the_event_once_more(receiver: Receiver) -> None:
    """After two failures (the first try and the immediate retry) the 10 s retry succeeds."""
    sender, clock = _sender(receiver.url, sentences_per_minute=0, failed_starts=["ai-1"])
    receiver.fail = 2
    sender.step()
    _run(sender, clock, 30, step=5)
    starts = [e for e in receiver.events() if e["EventType"] == 901]
    assert len(starts) == 3 and sender.stats()["delivered"] >= 1


def test_forged_sends_exactly_one_delivery_whose_sign_does_not_verify(receiver: Receiver) -> None:
    """forged: true adds one delivery with a wrong Sign; every other one verifies."""
    sender, clock = _sender(receiver.url, forged=True)
    _run(sender, clock, 40)
    app_bodies = [(h, b) for h, b in receiver.received if h["SdkAppId"] == str(APP)]
    bad = [b for h, b in receiver.received if h.get("Sign") and (
        h["SdkAppId"] != str(APP) or not hmac.compare_digest(h["Sign"], sign(KEY, b)))]
    assert len(bad) == 1
    assert len(app_bodies) >= 4 and sender.stats()["forged"] == 1


def test_server_runs_the_sender_thread_and_stops_it(receiver: Receiver) -> None:
    """The server starts the sender with itself and stops it on stop()."""
    clock = FakeClock(T0)
    scenario = parse_scenario(_scenario(receiver.url))
    with SimulatorServer.from_scenario(scenario, clock=clock) as sim:
        clock.advance(3)
        assert receiver.arrived.wait(10)
        assert sim.api.callbacks is not None
        thread = sim.api.callbacks._thread
    assert thread is not None and not thread.is_alive()
    assert 901 in receiver.types()


@pytest.mark.parametrize(("block", "error"), [
    ({"url": "ftp://x"}, "callbacks.url: must be an http:// or https:// URL"),
    ({"url": "http://h:99999"}, "callbacks.url: must be an http:// or https:// URL"),
    ({"url": "http://x", "keys": {APP: "has space"}},
     f"callbacks.keys.{APP}: must be 1 to 32 letters and digits"),
    ({"url": "http://x", "keys": {APP: "k" * 33}},
     f"callbacks.keys.{APP}: must be 1 to 32 letters and digits"),
    ({"url": "http://x", "sentences_per_minute": -1}, "callbacks.sentences_per_minute"),
    ({"url": "http://x", "forged": "yes"}, "callbacks.forged: must be true or false"),
    ({"url": "http://x", "rate": 1}, "callbacks.rate: unknown key"),
    ({"keys": {}}, "callbacks.url: must be a non-empty string"),
])  # fmt: skip
def test_bad_callbacks_block_names_the_field(block: dict[str, Any], error: str) -> None:
    """Each mistake in the callbacks block is reported with its field path."""
    data = {"credentials": [{"secret_id": "a", "secret_key": "b"}], "callbacks": block}
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data)
    assert any(line.startswith(error) for line in info.value.errors), info.value.errors
