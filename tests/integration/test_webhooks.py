"""From the simulator's signed callbacks to /metrics, with the exporter as a real process.

Covers discovery, stop, silence, failed starts, duplicates, stale, forged and unknown event
types, relaying to a downstream server, and a restart in the middle with nothing lost.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.integration.harness import Exporter, Simulator, dump, free_port, wait_for
from tests.webhook.downstream import Downstream
from trtc_exporter.secret import Secret
from trtc_exporter.webhook.verify import sign

pytestmark = pytest.mark.integration
APP = 1400000009
KEY = "IntegrationCallbackKey0123456789"
AI = "ai_transcription"


def scenario(hook_url: str) -> dict[str, Any]:
    forever = {"idle": 0, "preparing": 0, "in_progress": "forever", "stopped": 10}
    return {
        "tasks": [
            {"task_id": "hook-live", "sdk_app_id": APP, "phases": forever},
            {"task_id": "hook-silent", "sdk_app_id": APP, "phases": forever},
            {"task_id": "hook-fail", "sdk_app_id": APP, "phases": forever},
            {"task_id": "hook-short", "sdk_app_id": APP, "start_offset": 0,
             "phases": {"idle": 0, "preparing": 1, "in_progress": 5, "stopped": "forever"}},
        ],
        "callbacks": {"url": hook_url, "keys": {APP: KEY}, "sentences_per_minute": 60,
                      "silent_tasks": ["hook-silent"], "failed_starts": ["hook-fail"]},
    }


def config(tmp: Path, sim_url: str, downstream: str) -> dict[str, Any]:
    (tmp / "key").write_text(KEY + "\n")
    return {"api": {"endpoint": sim_url}, "poll_interval": "1s",
            "registration": {"db_path": str(tmp / "data" / "registered.db")},
            "webhook": {"key_file": str(tmp / "key"), "silence_after": "4s",
                        "forward_to": downstream}}


def post(url: str, doc: dict[str, Any], key: str = KEY) -> requests.Response:
    raw = json.dumps(doc).encode()
    headers = {"Content-Type": "application/json", "SdkAppId": str(APP),
               "Sign": sign(Secret(key), raw)}
    return requests.post(url, data=raw, headers=headers, timeout=5)


def event(etype: int, task: str, event_ms: int, callback_ms: int | None = None) -> dict[str, Any]:
    return {"EventGroupId": 9, "EventType": etype,
            "CallbackTs": callback_ms or int(time.time() * 1000),
            "EventInfo": {"EventMsTs": event_ms, "TaskId": task, "RoomId": "1",
                          "RoomIdType": 0, "Payload": {"Status": 0, "Text": "private words"}}}


def test_callbacks_drive_discovery_stop_silence_and_health(tmp_path: Path) -> None:
    """Tasks in no config show up, stop at once, go silent; refusals are counted, not applied;
    a restart loses no discovered task and no callback; every verified callback is relayed."""
    hook_port = free_port()
    hook_url = f"http://127.0.0.1:{hook_port}/webhook/trtc"
    downstream = Downstream().start()
    sim = Simulator(tmp_path, scenario(hook_url))
    args = ["--webhook.listen-address", f"127.0.0.1:{hook_port}"]
    exporter = Exporter(tmp_path, config(tmp_path, sim.url, downstream.url), args)
    processes: list[Any] = [sim, exporter]
    try:
        _discovery_stop_silence(exporter)
        _refusals(exporter, hook_url)
        exporter.stop()
        sim.control("POST", "tasks", {"task_id": "hook-late", "sdk_app_id": APP, "phases": {
            "idle": 0, "preparing": 0, "in_progress": "forever", "stopped": 10}})
        time.sleep(2)  # its start callback fails now; the sender retries it TRTC-style
        exporter = Exporter(tmp_path, config(tmp_path, sim.url, downstream.url), args)
        processes.append(exporter)
        _nothing_lost(exporter)
        _relayed(exporter, downstream)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{dump(*processes)}") from None
    finally:
        for process in processes:
            process.stop()
        downstream.stop()


def _discovery_stop_silence(exporter: Exporter) -> None:
    wait_for(lambda: {"hook-live", "hook-silent", "hook-short"} <= set(exporter.statuses()), 20,
             "callbacks to discover the tasks")
    assert exporter.value("trtc_exporter_targets", source="webhook") == 3
    assert exporter.value("trtc_exporter_targets", source="config") == 0
    wait_for(lambda: (exporter.value("trtc_ai_transcription_sentences_total",
                                     task_id="hook-live") or 0) >= 2, 15, "sentences")
    wait_for(lambda: exporter.statuses().get("hook-short") == "Stopped", 20, "the stop")
    wait_for(lambda: exporter.value("trtc_ai_transcription_silent", task_id="hook-silent") == 1,
             20, "silence")
    assert exporter.value("trtc_ai_transcription_silent", task_id="hook-live") == 0
    assert exporter.value("trtc_ai_transcription_start_failures_total", api=AI,
                          sdk_app_id=str(APP)) == 1
    assert "hook-fail" not in exporter.statuses()
    assert "private words" not in requests.get(exporter.url + "/metrics", timeout=5).text


def _refusals(exporter: Exporter, hook_url: str) -> None:
    def count(result: str) -> float:
        return exporter.value("trtc_exporter_webhook_requests_total", result=result) or 0.0

    now_ms = int(time.time() * 1000)
    before = {r: count(r) for r in ("duplicate", "stale", "unknown_event", "bad_signature")}
    sentences = exporter.value("trtc_ai_transcription_sentences_total", task_id="hook-live")
    first = post(hook_url, event(903, "hook-live", now_ms - 5))
    again = post(hook_url, event(903, "hook-live", now_ms - 5))
    assert (first.status_code, again.status_code) == (200, 200)
    stale = post(hook_url, event(903, "hook-live", now_ms, callback_ms=now_ms - 3_600_000))
    assert stale.status_code == 400 and "CallbackTs" in stale.json()["error"]
    unknown = post(hook_url, {**event(903, "hook-live", now_ms), "EventType": 999})
    assert unknown.status_code == 200
    forged = post(hook_url, event(902, "hook-live", now_ms), key="SomeoneElsesKey")
    assert forged.status_code == 403
    assert count("duplicate") == before["duplicate"] + 1
    assert count("stale") == before["stale"] + 1
    assert count("unknown_event") == before["unknown_event"] + 1
    assert count("bad_signature") == before["bad_signature"] + 1
    assert exporter.statuses()["hook-live"] == "InProgress"  # the forged stop changed nothing
    assert (exporter.value("trtc_ai_transcription_sentences_total", task_id="hook-live")
            or 0) >= (sentences or 0) + 1


def _nothing_lost(exporter: Exporter) -> None:
    statuses = exporter.statuses()
    assert {"hook-live", "hook-silent", "hook-short"} <= set(statuses), statuses
    wait_for(lambda: "hook-late" in exporter.statuses(), 30,
             "the start sent while the exporter was down (retried by the sender)")


def _relayed(exporter: Exporter, downstream: Downstream) -> None:
    wait_for(lambda: exporter.value("trtc_exporter_webhook_forward_queued") == 0, 15,
             "the relay queue to drain")
    bodies = [raw for raw, _, _ in downstream.received]
    keys = [(d["EventType"], d["EventInfo"]["TaskId"], d["EventInfo"]["EventMsTs"])
            for d in map(json.loads, bodies)]
    assert len(keys) == len(set(keys)), "a callback was relayed twice"
    assert all(app == str(APP) and sign_ for _, sign_, app in downstream.received)
    assert (exporter.value("trtc_exporter_webhook_forward_delivered_total") or 0) >= 1


def test_relay_outlives_a_30s_outage_and_an_exporter_restart(tmp_path: Path) -> None:
    """With the downstream server down for 30 s and the exporter restarted meanwhile, every
    verified callback reaches the server exactly once, in order per task, with its Sign."""
    downstream = Downstream().start()
    downstream.stop()  # down from the start (connection refused), same port later
    down_since = time.monotonic()
    tasks = [f"fw-{n}" for n in range(3)]
    forever = {"idle": 0, "preparing": 0, "in_progress": "forever", "stopped": 10}
    sim = Simulator(tmp_path, {"tasks": [{"task_id": t, "sdk_app_id": APP, "phases": forever}
                                         for t in tasks]})
    hook_port = free_port()
    hook_url = f"http://127.0.0.1:{hook_port}/webhook/trtc"
    conf = config(tmp_path, sim.url, downstream.url)
    conf["webhook"]["forward_backoff_max"] = "2s"  # back within 2 s, not up to a minute
    args = ["--webhook.listen-address", f"127.0.0.1:{hook_port}"]
    first = Exporter(tmp_path, conf, args)
    processes: list[Any] = [sim, first]
    try:
        sent = _send_batch(hook_url, tasks, 0)
        wait_for(lambda: (first.value("trtc_exporter_webhook_forward_attempt_failures_total")
                          or 0) >= 2, 15, "failed relay attempts while the server is down")
        assert first.value("trtc_exporter_webhook_forward_queued") == len(sent)
        time.sleep(max(0.0, 10.0 - (time.monotonic() - down_since)))  # restart mid-outage
        first.stop()
        (tmp_path / "second").mkdir()
        second = Exporter(tmp_path / "second", conf, args)
        processes.append(second)
        assert second.value("trtc_exporter_webhook_forward_queued") == len(sent)  # from disk
        sent += _send_batch(hook_url, tasks, 1)
        time.sleep(max(0.0, 30.0 - (time.monotonic() - down_since)))
        assert downstream.received == []
        downstream.start()
        wait_for(lambda: second.value("trtc_exporter_webhook_forward_queued") == 0, 20,
                 "the relay queue to drain once the server is back")
        time.sleep(1.0)  # nothing more arrives
        _delivered_once_in_order(downstream, sent, tasks)
        assert second.value("trtc_exporter_webhook_forward_delivered_total") == len(sent)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{dump(*processes)}") from None
    finally:
        for process in processes:
            process.stop()
        downstream.stop()


def _send_batch(hook_url: str, tasks: list[str], batch: int) -> list[tuple[str, bytes]]:
    """A start (first batch) or sentences for each task, interleaved; (task, raw body) sent."""
    sent = []
    base_ms = int(time.time() * 1000) - 1000
    for step in range(4):
        for n, task in enumerate(tasks):
            etype = 901 if batch == 0 and step == 0 else 903
            doc = event(etype, task, base_ms + step * 10 + n)
            response = post(hook_url, doc)
            assert response.status_code == 200, response.text
            sent.append((task, json.dumps(doc).encode()))
    return sent


def _delivered_once_in_order(downstream: Downstream, sent: list[tuple[str, bytes]],
                             tasks: list[str]) -> None:
    got = [raw for raw, _, _ in downstream.received]
    assert sorted(got) == sorted(raw for _, raw in sent), "lost or repeated callbacks"
    for task in tasks:
        mine = [raw for name, raw in sent if name == task]
        assert [raw for raw in got if raw in mine] == mine, f"{task} out of order"
    assert all(sign_ == sign(Secret(KEY), raw) and app == str(APP)
               for raw, sign_, app in downstream.received)
