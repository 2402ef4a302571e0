"""The collector renders the snapshot into the contract's families and never raises."""

from __future__ import annotations

import json

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.apimock import ApiMock
from tests.conftest import ENDPOINT, answer, api_error, build_exporter, poll_all
from trtc_exporter.exposition.webhooks import FAMILIES as WEBHOOK_FAMILIES
from trtc_exporter.metrics import SPECS

TARGETS = {"targets": [
    {"task_id": "t-run"},
    {"sdk_app_id": 1400000001, "session_id": "room-1", "labels": {"team": "live"}},
    {"task_id": "t-gone"},
    {"task_id": "t-broken"},
    {"api": "cloud_transcription", "sdk_app_id": 1400000001, "task_id": "c-1",
     "region": "ap-hongkong"},
]}


def _respond(request: object) -> tuple[int, dict[str, str], str]:
    body = json.loads(request.body)  # type: ignore[attr-defined]
    task = body.get("TaskId") or body.get("SessionId")
    table = {
        "t-run": (200, answer("InProgress", "t-run")),
        "room-1": (200, answer("Preparing", "resolved-9", SessionId="room-1")),
        "t-gone": (200, api_error("FailedOperation.TaskNotExist")),
        "t-broken": (502, "<html>bad gateway</html>"),
        "c-1": (200, answer("Exited", "c-1", start=1795514400)),
    }
    status, payload = table[task]
    return status, {}, payload if isinstance(payload, str) else json.dumps(payload)


def scrape(raw: dict[str, object] = TARGETS) -> dict[str, list[tuple[dict[str, str], float]]]:
    with ApiMock() as mock:
        mock.add_callback("POST", ENDPOINT + "/", callback=_respond)
        exporter = build_exporter(raw)
        poll_all(exporter)
    text = generate_latest(exporter.registry).decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str,
          **labels: str) -> float | None:
    for have, val in samples.get(name, []):
        if all(have.get(k) == v for k, v in labels.items()):
            return val
    return None


def test_every_contract_family_is_rendered() -> None:
    """All families of the metrics module appear (histograms via their _count series)."""
    samples = scrape()
    for spec in SPECS:
        if spec.name in ("trtc_exporter_cost_threshold_usd",  # only when a threshold is set
                         "trtc_exporter_coordination_up", "trtc_exporter_coordination_members",
                         "trtc_exporter_targets_owned",  # only with coordination
                         "trtc_exporter_target_file_last_load_successful"  # only with files
                         ) or spec.name in WEBHOOK_FAMILIES:  # only with the callback listener
            continue
        name = spec.name + "_count" if spec.kind == "histogram" else spec.name
        if spec.kind == "histogram" or spec.name.startswith("trtc_api_"):
            continue  # live instruments appear once a request was made; checked below
        assert name in samples, name
    assert value(samples, "trtc_api_requests_total", action="DescribeAITranscription") == 4


def test_status_is_a_stateset_with_every_state() -> None:
    """Each target has one series per state of its API generation, exactly one of them 1."""
    samples = scrape()
    run = [(lab["status"], v) for lab, v in samples["trtc_ai_transcription_status"]
           if lab["task_id"] == "t-run"]
    assert sorted(run) == sorted([("Idle", 0), ("Preparing", 0), ("InProgress", 1),
                                  ("Stopped", 0), ("Unknown", 0), ("NotFound", 0)])
    cloud = {lab["status"]: v for lab, v in samples["trtc_ai_transcription_status"]
             if lab["task_id"] == "c-1"}
    assert cloud == {"Idle": 0, "InProgress": 0, "Exited": 1, "Unknown": 0, "NotFound": 0}


def test_identity_labels_present_and_empty_when_unused() -> None:
    """Task targets carry empty session labels; every task family has the api label."""
    samples = scrape()
    labels = next(lab for lab, _ in samples["trtc_ai_transcription_poll_success"]
                  if lab["task_id"] == "t-run")
    assert labels == {"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "t-run",
                      "sdk_app_id": "", "session_id": "", "team": ""}


def test_not_found_and_failure_rendering() -> None:
    """TaskNotExist shows NotFound with poll_success 1; a 502 leaves Unknown and poll_success 0."""
    samples = scrape()
    assert value(samples, "trtc_ai_transcription_status", task_id="t-gone", status="NotFound") == 1
    assert value(samples, "trtc_ai_transcription_poll_success", task_id="t-gone") == 1
    assert value(samples, "trtc_ai_transcription_last_success_time_seconds", task_id="t-gone") == 0
    assert value(samples, "trtc_ai_transcription_status", task_id="t-broken", status="Unknown") == 1
    assert value(samples, "trtc_ai_transcription_poll_success", task_id="t-broken") == 0
    assert value(samples, "trtc_api_errors_total", code="HTTP5xx") == 1


def test_session_target_reports_resolved_task_id() -> None:
    """The info series carries the TaskId the API returned for a session lookup."""
    samples = scrape()
    assert value(samples, "trtc_ai_transcription_info", session_id="room-1",
                 resolved_task_id="resolved-9") == 1


def test_start_time_and_running_seconds() -> None:
    """StartTime is epoch seconds; running_seconds exists only for InProgress targets."""
    samples = scrape()
    assert value(samples, "trtc_ai_transcription_start_time_seconds", task_id="c-1") == 1795514400
    running = {lab["task_id"] for lab, _ in samples["trtc_ai_transcription_running_seconds"]}
    assert running == {"t-run"}


def test_task_counts_per_app_and_status() -> None:
    """trtc_ai_transcription_tasks counts targets per application and shown status."""
    samples = scrape()
    assert value(samples, "trtc_ai_transcription_tasks", api="ai_transcription",
                 sdk_app_id="", status="InProgress") == 1
    assert value(samples, "trtc_ai_transcription_tasks", api="ai_transcription",
                 sdk_app_id="1400000001", status="Preparing") == 1
    assert value(samples, "trtc_ai_transcription_concurrency_limit", sdk_app_id="1400000001") == 100


def test_help_says_values_are_cached() -> None:
    """HELP texts of task families say the value comes from the last background poll."""
    exporter = build_exporter(TARGETS)
    text = generate_latest(exporter.registry).decode()
    assert "# HELP trtc_ai_transcription_status Task status as a StateSet" in text
    assert "Cached from the last background poll" in text


def test_collect_never_raises_on_a_broken_snapshot() -> None:
    """If task rendering fails, exporter health series are still served."""
    exporter = build_exporter(TARGETS)
    exporter.store.snapshot = lambda: [object()]  # type: ignore[method-assign, return-value, list-item]
    text = generate_latest(exporter.registry).decode()
    assert "trtc_exporter_build_info" in text
    assert "trtc_ai_transcription_status{" not in text


def test_rendering_does_not_call_the_api() -> None:
    """Scraping a fresh exporter sends no request (the API stand-in records every one)."""
    with ApiMock() as mock:
        exporter = build_exporter(TARGETS)
        generate_latest(exporter.registry)
        assert len(mock.calls) == 0
