"""The SQLite store of registered targets: WAL, atomic writes, clear errors for unusable files."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from trtc_exporter.metrics import StorageErrors
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import (
    Registered,
    RegistrationStore,
    RegistrationStoreError,
    target_from_json,
)

TASK = Target(api="ai_transcription", region="ap-guangzhou", task_id="t-1", source="api")
SESSION = Target(api="ai_transcription", region="ap-singapore", sdk_app_id=1400000001,
                 session_id="room-1", labels=(("team", "live"),), poll_interval=30.0,
                 source="api")
CLOUD = Target(api="cloud_transcription", region="ap-hongkong", task_id="c-1",
               sdk_app_id=1400000002, translation=True, source="api")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "registered.db"


def test_the_database_runs_in_wal_mode(db: Path) -> None:
    """The file is created (with its directory) in WAL journal mode."""
    RegistrationStore(str(db)).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_every_target_field_survives_a_reopen(db: Path) -> None:
    """Registered targets, with labels, intervals, API and TTL, come back after a restart."""
    store = RegistrationStore(str(db))
    store.upsert([Registered(TASK, 100.0, None), Registered(SESSION, 101.0, 500.0),
                     Registered(CLOUD, 102.0, None)])
    store.close()
    again = RegistrationStore(str(db))
    loaded = {r.target.key: r for r in again.load()}
    assert set(loaded) == {TASK.key, SESSION.key, CLOUD.key}
    for original in (TASK, SESSION, CLOUD):
        restored = loaded[original.key].target
        assert restored == original
        assert restored.source == "api"
    assert (loaded[SESSION.key].created, loaded[SESSION.key].expires_at) == (101.0, 500.0)


def test_upsert_is_idempotent_by_identity(db: Path) -> None:
    """Registering the same identity again keeps one row and its creation time, new expiry."""
    store = RegistrationStore(str(db))
    store.upsert([Registered(TASK, 100.0, 200.0)])
    store.upsert([Registered(TASK, 150.0, 900.0)])
    rows = store.load()
    assert len(rows) == 1
    assert (rows[0].created, rows[0].expires_at) == (100.0, 900.0)


def test_delete_reports_how_many_rows_went(db: Path) -> None:
    """Deleting by id removes exactly those rows and says how many existed."""
    store = RegistrationStore(str(db))
    store.upsert([Registered(TASK, 1.0, None), Registered(SESSION, 1.0, None)])
    assert store.delete([TASK.id, "no-such-id"]) == 1
    assert [r.target for r in store.load()] == [SESSION]


def test_garbage_in_the_file_is_a_clear_error(db: Path) -> None:
    """A file that is not SQLite is refused at open, naming the setting, the path and why."""
    db.parent.mkdir()
    db.write_bytes(b"this is not a database\n" * 400)
    with pytest.raises(RegistrationStoreError) as caught:
        RegistrationStore(str(db))
    assert str(caught.value) == f"registration.db_path {db}: file is not a database"


def test_damaged_pages_are_found_at_open(db: Path) -> None:
    """A database whose table pages were overwritten is refused at open, not at first use."""
    store = RegistrationStore(str(db))
    store.upsert([Registered(Target(api="ai_transcription", region="ap-guangzhou",
                                       task_id=f"t-{i}", source="api"), 1.0, None)
                     for i in range(200)])
    store.close()
    page = 4096
    with sqlite3.connect(db) as conn:  # fold the WAL into the main file, then damage it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    data[2 * page: 3 * page] = b"\xa5" * page
    db.write_bytes(bytes(data))
    with pytest.raises(RegistrationStoreError) as caught:
        RegistrationStore(str(db))
    assert str(caught.value).startswith(f"registration.db_path {db}: ")
    assert "malformed" in str(caught.value) or "damaged" in str(caught.value)


def test_a_foreign_table_layout_is_refused(db: Path) -> None:
    """An SQLite file with a different 'targets' table is refused instead of failing later."""
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE targets (name TEXT)")
    with pytest.raises(RegistrationStoreError, match=r"no such column"):
        RegistrationStore(str(db))


def test_a_path_under_a_regular_file_is_a_clear_error(tmp_path: Path) -> None:
    """A db_path whose directory cannot exist is refused with the OS reason, no errno noise."""
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "registered.db"
    with pytest.raises(RegistrationStoreError) as caught:
        RegistrationStore(str(path))
    assert str(caught.value) == (f"registration.db_path {path}: File exists "
                                 f"({tmp_path / 'file'})")


def test_a_directory_as_db_path_is_a_clear_error(tmp_path: Path) -> None:
    """Pointing db_path at a directory is refused at open."""
    with pytest.raises(RegistrationStoreError) as caught:
        RegistrationStore(str(tmp_path))
    assert str(caught.value) == f"registration.db_path {tmp_path}: unable to open database file"


def test_a_locked_database_fails_the_write_cleanly(db: Path) -> None:
    """When another writer holds the lock, upsert raises RegistrationStoreError, keeps no state,
    and the fault is counted for the registrations store."""
    faults = StorageErrors()
    store = RegistrationStore(str(db), faults=faults)
    store._db.execute("PRAGMA busy_timeout=0")  # fail at once instead of waiting 5 s
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RegistrationStoreError, match="database is locked"):
            store.upsert([Registered(TASK, 1.0, None)])
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert faults.snapshot()["registrations"] == 1
    store.upsert([Registered(TASK, 1.0, None)])
    assert faults.snapshot()["registrations"] == 1
    assert [r.target for r in store.load()] == [TASK]


def test_an_unreadable_row_is_skipped_and_logged(db: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A row whose spec cannot be read is skipped with an error log; the others load."""
    store = RegistrationStore(str(db))
    store.upsert([Registered(TASK, 1.0, None)])
    store._db.execute("INSERT INTO targets VALUES ('x', '{\"no\": 1}', 1.0, NULL)")
    with caplog.at_level(logging.ERROR, logger="trtc_exporter.targets.registrations"):
        assert [r.target for r in store.load()] == [TASK]
    assert "skipping an unreadable row" in caplog.text


def test_json_spec_defaults() -> None:
    """A minimal stored spec restores with empty identity fields and source "api"."""
    target = target_from_json('{"api": "ai_transcription", "region": "ap-tokyo", '
                              '"task_id": "t"}')
    assert target == Target(api="ai_transcription", region="ap-tokyo", task_id="t")
    assert target.source == "api"
