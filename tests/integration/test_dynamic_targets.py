"""Dynamic targets in the real process: persistence across restarts, files, reload, probes."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.integration.harness import (
    SECRET_ID,
    SECRET_KEY,
    Exporter,
    Simulator,
    dump,
    run_cli,
    wait_for,
)

pytestmark = pytest.mark.integration
APP = 1400000001
TOKEN = "integration-registration-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
CREDS = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
RUNNING = {"idle": 0, "preparing": 0, "in_progress": "forever"}


def ai_task(task_id: str, phases: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return {"task_id": task_id, "api": "ai_transcription", "sdk_app_id": APP,
            "phases": phases or RUNNING, **kw}


def base_config(sim: Simulator, **extra: Any) -> dict[str, Any]:
    return {"api": {"endpoint": sim.url, "max_retries": 0, "timeout": "2s"},
            "poll_interval": "1s", **extra}


def registration(tmp: Path, **extra: Any) -> dict[str, Any]:
    (tmp / "token").write_text(TOKEN + "\n")
    return {"enabled": True, "db_path": str(tmp / "db" / "targets.db"),
            "bearer_token_file": str(tmp / "token"), **extra}


def unique_series(exp: Exporter) -> list[tuple[str, dict[str, str], float]]:
    """One scrape, asserting that no (name, labels) appears twice in it."""
    samples = exp.samples()
    keys = [(name, tuple(sorted(labels.items()))) for name, labels, _ in samples]
    assert len(keys) == len(set(keys)), "duplicate series in one scrape"
    return samples


def status_change_time(exp: Exporter, task_id: str) -> float | None:
    return exp.value("trtc_ai_transcription_status_change_time_seconds", task_id=task_id)


@pytest.fixture
def procs() -> Iterator[list[Any]]:
    """Processes a test starts; all are stopped at the end."""
    started: list[Any] = []
    yield started
    for proc in started:
        proc.stop()


def run_dir(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    return folder


def test_registered_targets_survive_a_restart(tmp_path: Path, procs: list[Any]) -> None:
    """Targets POSTed before SIGTERM are back after a restart on the same db and polled."""
    sim = Simulator(tmp_path, {"tasks": [ai_task("t-run"), ai_task(
        "t-idle", phases={"idle": "forever"}), ai_task("t-sess", session_id="room-1")]})
    procs.append(sim)
    config = base_config(sim, targets=[{"task_id": "t-config"}],
                         registration=registration(tmp_path))
    first = Exporter(run_dir(tmp_path, "first"), config)
    procs.append(first)
    body = {"targets": [{"task_id": "t-run"}, {"task_id": "t-idle"},
                        {"sdk_app_id": APP, "session_id": "room-1"}]}
    response = requests.post(first.url + "/api/v1/targets", json=body, headers=BEARER,
                             timeout=5)
    assert response.status_code == 200, response.text
    timed = requests.post(first.url + "/api/v1/targets", headers=BEARER, timeout=5,
                          json={"targets": [{"task_id": "t-ttl"}], "ttl": "1h"})
    assert timed.status_code == 200
    wait_for(lambda: first.statuses().get("room-1") == "InProgress", 10, "first poll")
    assert first.stop() == 0
    with sqlite3.connect(tmp_path / "db" / "targets.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT count(*) FROM targets").fetchone() == (4,)

    second = Exporter(run_dir(tmp_path, "second"), config)
    procs.append(second)
    rows = {r["task_id"] or r["session_id"]: r for r in requests.get(
        second.url + "/api/v1/targets", timeout=5).json()["data"]}
    assert {name: row["source"] for name, row in rows.items()} == {
        "t-config": "config", "t-run": "api", "t-idle": "api", "room-1": "api", "t-ttl": "api"}
    assert rows["t-ttl"]["expires_at"] is not None and rows["t-run"]["expires_at"] is None
    truth = sim.truth()
    wait_for(lambda: second.statuses().get("t-idle") == truth["t-idle"], 10, "restored polls")
    shown = second.statuses()
    assert (shown["t-run"], shown["t-idle"], shown["room-1"]) == (
        truth["t-run"], truth["t-idle"], truth["t-sess"]), dump(second, sim)
    assert (shown["t-ttl"], shown["t-config"]) == ("NotFound", "NotFound")
    unique_series(second)


@pytest.mark.parametrize("damage", ["garbage", "under-a-file", "directory"])
def test_an_unusable_database_stops_the_start_with_exit_2(tmp_path: Path, damage: str) -> None:
    """A corrupt or unwritable registration database is a one-line error and exit code 2."""
    db = tmp_path / "db" / "targets.db"
    if damage == "garbage":
        db.parent.mkdir()
        db.write_bytes(b"\x00garbage that is not SQLite\n" * 300)
        reason = "file is not a database"
    elif damage == "under-a-file":
        db.parent.write_text("a regular file where the directory should be")
        reason = f"File exists ({db.parent})"
    else:
        db.mkdir(parents=True)
        reason = "unable to open database file"
    reg = registration(tmp_path)
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump({
        "targets": [{"task_id": "t"}], "registration": reg}))
    result = run_cli("--config.file", str(tmp_path / "exporter.yml"),
                     "--web.listen-address", "127.0.0.1:0", env=CREDS)
    assert result.returncode == 2, result.stderr
    assert f"registration.db_path {db}: {reason}" in result.stderr.splitlines()


def test_registration_without_authentication_refuses_to_start(tmp_path: Path) -> None:
    """Enabled without a token file or basic auth: exit 2 naming registration.bearer_token_file."""
    (tmp_path / "exporter.yml").write_text(yaml.safe_dump({"registration": {
        "enabled": True, "db_path": str(tmp_path / "targets.db")}}))
    result = run_cli("--config.file", str(tmp_path / "exporter.yml"),
                     "--web.listen-address", "127.0.0.1:0", env=CREDS)
    assert result.returncode == 2
    assert "registration.bearer_token_file" in result.stderr


def test_target_files_are_followed_live(tmp_path: Path, procs: list[Any]) -> None:
    """Edits are polled within the refresh interval; a broken file keeps its targets; deletion
    removes them."""
    sim = Simulator(tmp_path, {"tasks": [ai_task("t-a"), ai_task("t-b")]})
    procs.append(sim)
    sd = run_dir(tmp_path, "sd")
    path = sd / "team.yml"
    path.write_text("- task_id: t-a\n")
    exp = Exporter(tmp_path, base_config(sim, target_files=[str(sd / "*.yml"), str(sd / "*.json")],
                                         target_files_refresh_interval="1s"))
    procs.append(exp)
    assert exp.statuses() == {"t-a": "InProgress"}
    (sd / "more.json").write_text('[{"task_id": "t-b"}]')
    wait_for(lambda: exp.statuses().get("t-b") == "InProgress", 6, "the new file's target")
    loaded = "trtc_exporter_target_file_last_load_successful"
    path.write_text("- task_id: [\n")
    wait_for(lambda: exp.value(loaded, path=str(path)) == 0, 6, "the broken file to show")
    assert exp.value(loaded, path=str(sd / "more.json")) == 1
    polled = exp.value("trtc_ai_transcription_last_success_time_seconds", task_id="t-a")
    wait_for(lambda: (exp.value("trtc_ai_transcription_last_success_time_seconds",
                                task_id="t-a") or 0) > (polled or 0), 6, "t-a still polled")
    assert "target file " + str(path) + " is broken" in exp.output()
    path.unlink()
    wait_for(lambda: "t-a" not in exp.statuses(), 6, "the deleted file's targets to go")
    samples = unique_series(exp)
    assert exp.statuses() == {"t-b": "InProgress"}
    assert not [s for s in samples if s[1].get("path") == str(path)]
    assert exp.value("trtc_exporter_target_changes_total", change="removed", source="file") == 1


def test_sighup_and_http_reload_swap_good_configs_and_keep_bad_ones_out(
        tmp_path: Path, procs: list[Any]) -> None:
    """SIGHUP applies a good config (survivors keep state); POST /-/reload rejects a bad one."""
    sim = Simulator(tmp_path, {"tasks": [ai_task("t-keep"), ai_task("t-gone"), ai_task("t-new")]})
    procs.append(sim)
    config = base_config(sim, targets=[{"task_id": "t-keep"}, {"task_id": "t-gone"}])
    exp = Exporter(tmp_path, config, extra_args=["--web.enable-lifecycle"])
    procs.append(exp)
    changed = status_change_time(exp, "t-keep")
    reloaded = exp.value("trtc_exporter_config_last_reload_success_time_seconds") or 0
    exp.config_path.write_text(yaml.safe_dump({**config, "targets": [
        {"task_id": "t-keep"}, {"task_id": "t-new"}]}))
    exp.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: exp.statuses().get("t-new") == "InProgress", 6, "the new target")
    assert "t-gone" not in exp.statuses()
    assert not [s for s in unique_series(exp) if s[1].get("task_id") == "t-gone"]
    assert status_change_time(exp, "t-keep") == changed
    assert (exp.value("trtc_exporter_config_last_reload_success_time_seconds") or 0) > reloaded
    assert exp.value("trtc_exporter_config_last_reload_successful") == 1

    exp.config_path.write_text(yaml.safe_dump({**config, "targets": [{"task_id": ["t-1"]}]}))
    response = requests.post(exp.url + "/-/reload", timeout=5)
    assert not response.ok
    assert "targets[0].task_id: must be a string, got list" in response.text
    assert exp.value("trtc_exporter_config_last_reload_successful") == 0
    polled = exp.value("trtc_ai_transcription_last_success_time_seconds", task_id="t-new") or 0
    wait_for(lambda: (exp.value("trtc_ai_transcription_last_success_time_seconds",
                                task_id="t-new") or 0) > polled, 6, "old targets still polled")
    assert set(exp.statuses()) == {"t-keep", "t-new"}
    unique_series(exp)


def test_probe_registers_and_then_answers_from_polls(tmp_path: Path, procs: list[Any]) -> None:
    """With allow_probe_registration an unknown probe answers 0 at once, then 1 once polled."""
    sim = Simulator(tmp_path, {"tasks": [ai_task("t-probe")]})
    procs.append(sim)
    exp = Exporter(tmp_path, base_config(sim, targets=[{"task_id": "t-config"}],
                                         registration=registration(
                                             tmp_path, allow_probe_registration=True)))
    procs.append(exp)
    url = exp.url + "/probe?task_id=t-probe"
    assert "probe_success 0.0" in requests.get(url, timeout=5).text
    wait_for(lambda: "probe_success 1.0" in requests.get(url, timeout=5).text, 6,
             "the probed target's first poll")
    assert 'status="InProgress",task_id="t-probe"' in requests.get(url, timeout=5).text
    rows = {r["task_id"]: r for r in requests.get(exp.url + "/api/v1/targets",
                                                  timeout=5).json()["data"]}
    assert rows["t-probe"]["source"] == "api" and rows["t-probe"]["expires_at"] is not None


def test_max_targets_refuses_registrations_with_429(tmp_path: Path, procs: list[Any]) -> None:
    """Past max_targets the running exporter answers 429 and counts the refusal."""
    sim = Simulator(tmp_path, {"tasks": [ai_task("t-1")]})
    procs.append(sim)
    exp = Exporter(tmp_path, base_config(sim, targets=[{"task_id": "t-1"}], max_targets=2,
                                         registration=registration(tmp_path)))
    procs.append(exp)
    response = requests.post(exp.url + "/api/v1/targets", headers=BEARER, timeout=5,
                             json=[{"task_id": "a-1"}, {"task_id": "a-2"}])
    assert response.status_code == 429
    assert "max_targets (2) reached" in response.json()["errors"][0]
    assert exp.value("trtc_exporter_target_changes_total", change="refused", source="api") == 2
