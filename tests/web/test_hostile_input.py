"""Input that is too long, not valid Unicode, or stored by someone else: a clear 400 at the door,
and nothing stored can make /metrics or the landing page fail (issue 15 items 5, 6, 16)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.web.test_registration import BEARER, Stack, probe_registering, registration, stacks
from trtc_exporter.target import MAX_ID_CHARS

__all__ = ["stacks"]  # the fixture, imported for these tests

LONG = "s" * 3000


def post_raw(stack: Stack, body: bytes) -> requests.Response:
    return requests.post(stack.url + "/api/v1/targets", data=body,
                         headers={**BEARER, "Content-Type": "application/json"}, timeout=5)


@pytest.fixture
def api(tmp_path: Path, stacks: Callable[..., Stack]) -> Stack:
    return probe_registering(tmp_path, stacks)


@pytest.mark.parametrize(("entry", "error"), [
    ({"sdk_app_id": 1400000001, "session_id": LONG},
     f"targets[0].session_id: longer than {MAX_ID_CHARS} characters (got 3000); TRTC ids and "
     f"label values must fit in {MAX_ID_CHARS}"),
    ({"task_id": LONG}, f"targets[0].task_id: longer than {MAX_ID_CHARS} characters (got 3000); "
                        f"TRTC ids and label values must fit in {MAX_ID_CHARS}"),
    ({"task_id": "t", "labels": {"team": LONG}},
     f"targets[0].labels.team: longer than {MAX_ID_CHARS} characters (got 3000); TRTC ids and "
     f"label values must fit in {MAX_ID_CHARS}"),
    ({"task_id": "t", "labels": {"n" * 200: "x"}},
     f"targets[0].labels.{'n' * 57}...: label name longer than 128 characters"),
], ids=["session-id", "task-id", "label-value", "label-name"])
def test_over_long_ids_and_labels_are_a_400(api: Stack, entry: object, error: str) -> None:
    """A 3 000-character id or label is refused naming the field; nothing is registered."""
    response = api.post(entry)
    assert response.status_code == 400
    assert response.json()["errors"] == [error]
    assert set(api.rows()) == {"c-1"}


def test_an_over_long_probe_is_a_400_and_registers_nothing(api: Stack) -> None:
    """/probe with a 3 000-character session_id: 400, and no target whose label would break
    Prometheus' label_value_length_limit."""
    response = requests.get(f"{api.url}/probe?sdk_app_id=1400000001&session_id={LONG}",
                            timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        f"probe: session_id: longer than {MAX_ID_CHARS} characters (got 3000); TRTC ids and "
        f"label values must fit in {MAX_ID_CHARS}"]
    assert set(api.rows()) == {"c-1"}


APP_RANGE = "must be an integer from 1 to 18446744073709551615"


@pytest.mark.parametrize(("query", "error"), [
    ("task_id=a%00b", "probe: task_id: contains the control character U+0000"),
    ("task_id=a%1B%5B31mb", "probe: task_id: contains the control character U+001B"),
    ("sdk_app_id=1400000001&session_id=r%E2%80%AEtxt",
     "probe: session_id: contains the bidirectional control U+202E"),
    ("task_id=t&region=ap%E2%81%A6x", "probe: region: contains the bidirectional control U+2066"),
    ("sdk_app_id=-1&session_id=s", f"probe: sdk_app_id: {APP_RANGE}, got '-1'"),
    ("sdk_app_id=0&session_id=s", f"probe: sdk_app_id: {APP_RANGE}, got '0'"),
    ("sdk_app_id=14e8&session_id=s", f"probe: sdk_app_id: {APP_RANGE}, got '14e8'"),
    ("sdk_app_id=%EF%BC%91&session_id=s", f"probe: sdk_app_id: {APP_RANGE}, got '\uff11'"),
    ("task_id=t&sdk_app_id=18446744073709551616",
     f"probe: sdk_app_id: {APP_RANGE}, got '18446744073709551616'"),
], ids=["nul", "escape", "bidi-session", "isolate-region", "negative-app", "zero-app",
        "float-app", "fullwidth-app", "app-over-u64"])
def test_an_invalid_probe_parameter_is_a_400_naming_it(api: Stack, query: str,
                                                       error: str) -> None:
    """/probe refuses control and bidi characters in its ids and an SdkAppId that is not an
    integer in 1..2^64-1 with a 400 naming the parameter (not a 200 probe_success 0), and
    registers nothing."""
    response = requests.get(f"{api.url}/probe?{query}", timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"] == [error]
    assert set(api.rows()) == {"c-1"}


def test_a_probe_app_id_with_leading_zeros_matches_its_target(api: Stack) -> None:
    """sdk_app_id=01400000001 is the integer 1400000001: it matches the registered target."""
    requests.get(f"{api.url}/probe?sdk_app_id=1400000001&session_id=z-1", timeout=5)
    text = requests.get(f"{api.url}/probe?sdk_app_id=01400000001&session_id=z-1", timeout=5).text
    assert 'session_id="z-1"' in text


@pytest.mark.parametrize(("body", "error"), [
    (b'{"task_id": "a\\ud800"}', "targets[0].task_id: must be valid Unicode text (found a lone "
                                 "surrogate)"),
    (b'{"sdk_app_id": 1, "session_id": "\\udfff"}', "targets[0].session_id: must be valid "
                                                   "Unicode text (found a lone surrogate)"),
    (b'{"task_id": "t", "labels": {"team": "\\ud800"}}',
     "targets[0].labels.team: must be valid Unicode text (found a lone surrogate)"),
    (b'{"task_id": "t", "region": "\\ud800"}',
     "targets[0].region: must be valid Unicode text (found a lone surrogate)"),
    (b'{"targets": [{"task_id": "t"}], "ttl": "\\ud800"}',
     'ttl: not a valid duration string: "\\ud800"'),
    (b'{"task_id": "a\\u0000b"}', "targets[0].task_id: contains the control character U+0000"),
    (b'{"task_id": "t", "labels": {"team": "\\u202eevil"}}',
     "targets[0].labels.team: contains the bidirectional control U+202E"),
], ids=["task-id", "session-id", "label", "region", "ttl", "nul", "bidi-label"])
def test_a_lone_surrogate_in_any_body_field_is_a_400(api: Stack, body: bytes,
                                                     error: str) -> None:
    """JSON escapes that decode to lone surrogates are refused naming the field, never a 500."""
    response = post_raw(api, body)
    assert response.status_code == 400
    assert error in response.json()["errors"]


@pytest.mark.parametrize("path", ["/probe?task_id=%FF", "/api/v1/targets?status=%ED%A0%80",
                                  "/?status=%C3", "/metrics?x=%FF", "/-/healthy?%FF=1"])
def test_a_query_that_is_not_utf8_is_a_400_on_every_endpoint(api: Stack, path: str) -> None:
    """Percent-escapes that are not UTF-8 are refused naming the parameter, not turned into
    U+FFFD."""
    response = requests.get(api.url + path, timeout=5)
    assert response.status_code == 400
    assert "not valid UTF-8" in response.text
    assert "query parameter" in response.text


def test_a_delete_with_a_bad_query_is_a_400(api: Stack) -> None:
    """The DELETE of the registration API refuses a bad query like every other endpoint."""
    response = requests.delete(api.url + "/api/v1/targets/abc?x=%FF", headers=BEARER, timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"] == ["query parameter 'x': not valid UTF-8"]


# -- what was stored by someone else ----------------------------------------------------------

BAD_ROWS = [
    json.dumps({"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "a\ud800"}),
    json.dumps({"api": "ai_transcription", "region": "ap-guangzhou", "sdk_app_id": 1,
                "session_id": LONG}),
    json.dumps({"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "t",
                "labels": {"team": 5}}),
    "not json",
    json.dumps(["a", "list"]),
]


def test_bad_rows_in_the_database_are_skipped_and_counted(tmp_path: Path,
                                                          stacks: Callable[..., Stack]) -> None:
    """Rows written straight into SQLite (surrogate, 3 000 chars, wrong types, not JSON) are
    skipped at load and counted; /, /api/v1/targets and /metrics answer 200 with the good row."""
    reg = registration(tmp_path)
    db = Path(reg["db_path"])
    db.parent.mkdir(parents=True)
    good = json.dumps({"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "ok"})
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE targets (id TEXT PRIMARY KEY, spec TEXT NOT NULL, "
                     "created REAL NOT NULL, expires_at REAL)")
        conn.executemany("INSERT INTO targets VALUES (?, ?, ?, ?)",
                         [(str(i), spec, 0.0, None) for i, spec in
                          enumerate([good, *BAD_ROWS])])
    conn.close()
    stack = stacks({"registration": reg})
    for path in ("/", "/api/v1/targets", "/metrics"):
        assert requests.get(stack.url + path, timeout=5).status_code == 200
    assert set(stack.rows()) == {"ok"}
    assert stack.value("trtc_exporter_dropped_series_total",
                       reason="stored_row") == len(BAD_ROWS)


def test_a_target_file_with_a_lone_surrogate_is_refused_naming_it(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """A JSON target file holding "\\ud800" is broken (named), the other file still serves."""
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "bad.json").write_text('[{"task_id": "x\\ud800"}]')
    (tmp_path / "sd" / "good.json").write_text('[{"task_id": "f-1"}]')
    stack = stacks({"target_files": [str(tmp_path / "sd" / "*.json")]})
    assert set(stack.rows()) == {"f-1"}
    assert requests.get(stack.url + "/", timeout=5).status_code == 200
    state = stack.exporter.sources.files.files[str(tmp_path / "sd" / "bad.json")]
    assert state.error == (f"{tmp_path / 'sd' / 'bad.json'}[0].task_id: must be valid Unicode "
                           f"text (found a lone surrogate)")


# -- storage faults -----------------------------------------------------------------------------

def test_an_unwritable_shared_memory_file_is_a_503_not_a_crash(
        api: Stack, caplog: pytest.LogCaptureFixture) -> None:
    """A directory where SQLite's -shm file belongs (as a file it cannot extend would SIGBUS the
    process): the registration answers 503 naming the file, logs it, and the process lives."""
    shm = Path(str(api.tmp / "db" / "targets.db") + "-shm")
    if shm.exists():
        shm.unlink()
    shm.mkdir()
    faults = ("trtc_exporter_storage_errors_total", {"store": "registrations"})
    assert api.value(faults[0], **faults[1]) == 0
    try:
        response = api.post({"task_id": "new"})
        assert response.status_code == 503
        [error] = response.json()["errors"]
        assert error.startswith(f"registration database write refused: {shm}: ")
        assert "registration database write refused" in caplog.text
        assert requests.get(api.url + "/metrics", timeout=5).status_code == 200
        assert api.value(faults[0], **faults[1]) == 1
    finally:
        shm.rmdir()


def test_an_immutable_shared_memory_file_is_a_503(api: Stack) -> None:
    """With chattr +i on -shm (the field report's SIGBUS), a registration answers 503 and the
    fault is counted."""
    shm = Path(str(api.tmp / "db" / "targets.db") + "-shm")
    if shutil.which("chattr") is None or not shm.exists():
        pytest.skip("chattr or the -shm file is not available here")
    if subprocess.run(["chattr", "+i", str(shm)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system or for this user")
    try:
        assert api.post({"task_id": "new"}).status_code == 503
        assert api.value("trtc_exporter_storage_errors_total", store="registrations") == 1
    finally:
        subprocess.run(["chattr", "-i", str(shm)], check=False)


def test_a_database_file_replaced_by_garbage_fails_at_start(tmp_path: Path,
                                                            stacks: Callable[..., Stack]) -> None:
    """A corrupt database is a clear start-up error naming the path, not a crash later."""
    from trtc_exporter.targets.registrations import RegistrationStore, RegistrationStoreError
    db = tmp_path / "garbage.db"
    db.write_bytes(os.urandom(8192))
    with pytest.raises(RegistrationStoreError, match=f"registration.db_path {db}: "):
        RegistrationStore(str(db))
