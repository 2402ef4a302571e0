"""Callback effects on the exporter: discovery, stop, sentences, failed starts, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.apimock import ApiMock
from tests.conftest import ENDPOINT, answer, build_exporter
from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock
from trtc_exporter.polling.events import TaskEvents
from trtc_exporter.webhook.effects import (
    EffectUnavailable,
    Sentence,
    StartFailed,
    TaskStarted,
    TaskStopped,
)
from trtc_exporter.webhook.keys import KeyRing

APP = 1400123456
AI = "ai_transcription"


def exporter(tmp_path: Path, clock: FakeClock, **raw: object) -> Exporter:
    config = {"registration": {"db_path": str(tmp_path / "reg.db")}, **raw}
    return build_exporter(config, clock, keyring=KeyRing())


def events(ex: Exporter):  # type: ignore[no-untyped-def]  # the sink of the hub
    return ex.webhook._sink  # type: ignore[union-attr]


def started(task: str = "task-1", api: str = AI, app: int = APP) -> TaskStarted:
    return TaskStarted(app, task, api, 1_795_514_000.0, "room", 0)


def test_a_start_registers_the_task_as_a_webhook_target_due_now(tmp_path: Path) -> None:
    """The task is polled with source webhook, the app's region, and is due at once."""
    clock = FakeClock()
    ex = exporter(tmp_path, clock, apps={APP: {"region": "ap-singapore"}})
    events(ex).apply(started())
    (target,) = ex.poller.targets()
    assert (target.source, target.region, target.sdk_app_id, target.task_id) == (
        "webhook", "ap-singapore", APP, "task-1")
    assert [key for key, _ in ex.poller.take_due()] == [target.key]
    assert ex.sources.expiry_of(target.key) == clock.time() + 86_400.0


def test_the_registration_ttl_applies_and_the_region_defaults_to_api_region(
        tmp_path: Path) -> None:
    """registration.default_ttl is the TTL; without apps.<id>.region the region is api.region."""
    clock = FakeClock()
    ex = exporter(tmp_path, clock, registration={"db_path": str(tmp_path / "r.db"),
                                                  "default_ttl": "2h"})
    events(ex).apply(started(api="cloud_transcription"))
    (target,) = ex.poller.targets()
    assert (target.api, target.region) == ("cloud_transcription", "ap-guangzhou")
    assert ex.sources.expiry_of(target.key) == clock.time() + 7200.0


def test_discovered_tasks_survive_a_restart(tmp_path: Path) -> None:
    """A second exporter on the same registration database watches the task again."""
    first = exporter(tmp_path, FakeClock())
    events(first).apply(started())
    first.stop()
    second = exporter(tmp_path, FakeClock())
    assert [t.task_id for t in second.poller.targets()] == ["task-1"]
    assert second.poller.targets()[0].source == "webhook"


def test_a_configured_task_is_not_registered_twice(tmp_path: Path) -> None:
    """A config target naming the task id only is found by (api, task id)."""
    ex = exporter(tmp_path, FakeClock(), targets=[{"task_id": "task-1"}])
    events(ex).apply(started())
    events(ex).apply(Sentence(APP, "task-1", AI, 1_795_514_001.0))
    (state,) = ex.states()
    assert (state.target.source, state.sentences) == ("config", 1)


def test_a_stop_shows_stopped_at_once_and_asks_for_a_confirming_poll(tmp_path: Path) -> None:
    """902 → Stopped with the event time as change time; 2.0's 1402 → Exited."""
    clock = FakeClock()
    ex = exporter(tmp_path, clock)
    events(ex).apply(started())
    events(ex).apply(started("c-1", api="cloud_transcription"))
    events(ex).apply(TaskStopped(APP, "task-1", AI, 1_795_514_100.0))
    events(ex).apply(TaskStopped(APP, "c-1", "cloud_transcription", 1_795_514_101.0))
    shown = {s.target.task_id: (s.shown_status(clock.time()), s.status_change_time)
             for s in ex.states()}
    assert shown == {"task-1": ("Stopped", 1_795_514_100.0),
                     "c-1": ("Exited", 1_795_514_101.0)}
    assert len(ex.poller.take_due()) == 2


def test_a_stop_of_an_unknown_task_changes_nothing(tmp_path: Path) -> None:
    """An ended task we never watched is not registered."""
    ex = exporter(tmp_path, FakeClock())
    events(ex).apply(TaskStopped(APP, "task-9", AI, 1_795_514_100.0))
    assert ex.poller.targets() == []


def test_sentences_count_and_discover(tmp_path: Path) -> None:
    """Sentences count per task and keep the latest time; one of an unknown task discovers it."""
    ex = exporter(tmp_path, FakeClock())
    for when in (1_795_514_010.0, 1_795_514_030.0, 1_795_514_020.0):
        events(ex).apply(Sentence(APP, "task-1", AI, when))
    (state,) = ex.states()
    assert (state.target.source, state.sentences, state.last_sentence) == (
        "webhook", 3, 1_795_514_030.0)


def test_failed_starts_are_counted_per_app_and_watch_nothing(tmp_path: Path) -> None:
    """Status 1 counts per (api, sdk_app_id) and registers no target."""
    ex = exporter(tmp_path, FakeClock())
    for _ in range(2):
        events(ex).apply(StartFailed(APP, "task-x", AI, 1_795_514_000.0))
    assert events(ex).start_failures() == {(AI, str(APP)): 2}
    assert ex.poller.targets() == []


def test_max_targets_refuses_discoveries_without_raising(tmp_path: Path) -> None:
    """Past max_targets a start is refused (logged, counted once), and nothing raises."""
    ex = exporter(tmp_path, FakeClock(), max_targets=1, targets=[{"task_id": "cfg"}])
    events(ex).apply(started())
    events(ex).apply(Sentence(APP, "task-1", AI, 1_795_514_001.0))
    assert [t.task_id for t in ex.poller.targets()] == ["cfg"]
    assert ex.sources.changes()[("refused", "webhook")] == 1


@pytest.mark.parametrize("status", ["InProgress"])
def test_a_confirming_poll_spends_the_budget(tmp_path: Path, status: str) -> None:
    """The poll a start triggers is an ordinary API request, counted by the client."""
    ex = exporter(tmp_path, FakeClock(auto_advance=True))
    events(ex).apply(started())
    with ApiMock() as mock:
        mock.add("POST", ENDPOINT + "/", json=answer(status, "task-1"))
        for key, _ in ex.poller.take_due():
            ex.poller.poll_one(key)
    (state,) = ex.states()
    assert state.status == status
    assert ex.client.metrics.requests.labels("DescribeAITranscription",
                                             "ap-guangzhou")._value.get() == 1


def test_allow_unsigned_is_warned_at_start(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """webhook.allow_unsigned: true logs a warning when the receiver is built."""
    config = {"registration": {"db_path": str(tmp_path / "reg.db")}}
    build_exporter(config, FakeClock(), keyring=KeyRing(allow_unsigned=True))
    assert any("allow_unsigned" in r.message and r.levelname == "WARNING"
               for r in caplog.records)


def test_a_start_the_store_cannot_take_now_is_not_applied(tmp_path: Path) -> None:
    """A registration store error makes apply False (answered 503: TRTC retries)."""
    ex = exporter(tmp_path, FakeClock())

    def unreachable(target: object, ttl: float) -> bool:
        raise EffectUnavailable("coordination Redis unreachable: registration refused")

    sink = TaskEvents(ex.poller, unreachable, lambda: ex.config)
    assert sink.apply(started()) is False
    assert ex.poller.targets() == []


def test_an_effect_no_other_replica_received_is_not_applied(tmp_path: Path) -> None:
    """A stop of a task another replica polls, relayed to nobody: apply False, else True."""
    ex = exporter(tmp_path, FakeClock())
    delivered: list[bool] = [False]
    sink = TaskEvents(ex.poller, lambda target, ttl: True, lambda: ex.config,
                      find=lambda api, task: ("elsewhere",), relay=lambda effect: delivered[0])
    stop = TaskStopped(APP, "task-9", AI, 1_795_514_000.0)
    assert sink.apply(stop) is False
    delivered[0] = True
    assert sink.apply(stop) is True
    assert sink.apply(StartFailed(APP, "task-9", AI, 1_795_514_000.0)) is True
