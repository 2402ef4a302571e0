"""Targets registered through the HTTP API, persisted in SQLite so a restart loses nothing.

WAL mode and one transaction per change make writes atomic; a database that cannot be opened,
read or written is a :class:`RegistrationStoreError` at start, not a surprise at the first
registration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from trtc_exporter.durations import format_duration
from trtc_exporter.errors import Errors, show
from trtc_exporter.metrics import DropCounter, StorageErrors
from trtc_exporter.target import Target, parse_target

if TYPE_CHECKING:
    import sqlite3

log = logging.getLogger("trtc_exporter.store")  # caller= stays as before
_SCHEMA = """CREATE TABLE IF NOT EXISTS targets (
    id TEXT PRIMARY KEY, spec TEXT NOT NULL, created REAL NOT NULL, expires_at REAL)"""


class RegistrationStoreError(Exception):
    """The registration database is unusable; the message names the path and the cause."""


@dataclass(frozen=True, slots=True)
class Registered:
    """One registered target: when it was registered and when it expires (wall-clock seconds;
    ``expires_at`` None for never)."""

    target: Target
    created: float
    expires_at: float | None


class Store(Protocol):
    """Where registrations live: :class:`RegistrationStore` (SQLite), or the coordination's
    Redis-backed store shared by replicas. Failures raise :class:`RegistrationStoreError`."""

    def load(self) -> list[Registered]:
        """Every stored registration (expired ones included; the target set expires them)."""

    def upsert(self, items: list[Registered]) -> None:
        """Insert or replace registrations by target id."""

    def delete(self, ids: list[str]) -> int:
        """Delete registrations by target id; the number removed."""

    def close(self) -> None:
        """Release the store (database handle or connection); idempotent."""

    def changed(self) -> bool:
        """True when another process changed the stored set since the last ``load``."""
        ...


def target_to_json(target: Target) -> str:
    """A target as the registration API's JSON spec (only the fields set), the form stored and
    listed; parsed back by ``config.model.parse_targets``."""
    spec: dict[str, object] = {"api": target.api, "region": target.region}
    if target.task_id:
        spec["task_id"] = target.task_id
    if target.sdk_app_id is not None:
        spec["sdk_app_id"] = target.sdk_app_id
    if target.session_id:
        spec["session_id"] = target.session_id
    if target.labels:
        spec["labels"] = dict(target.labels)
    if target.poll_interval:
        spec["poll_interval_seconds"] = target.poll_interval
    if target.translation:
        spec["translation"] = True
    if target.account:
        spec["account"] = target.account
    if target.source != "api":  # "webhook": found by a TRTC callback
        spec["source"] = target.source
    return json.dumps(spec, sort_keys=True)


def target_from_json(text: str) -> Target:
    """A stored row back into a Target, validated like any registration (a row written by an
    older release or another tool may hold anything); ValueError naming the problem."""
    spec = json.loads(text)
    if not isinstance(spec, dict):
        raise ValueError("not a JSON object")
    interval = spec.pop("poll_interval_seconds", None)
    if interval is not None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise ValueError("poll_interval_seconds is not a positive number")
        spec["poll_interval"] = format_duration(interval)  # whole ms, as parsed on the way in
    source = spec.pop("source", "api")
    if source not in ("api", "webhook"):
        raise ValueError(f"source {source!r} is not api or webhook")
    errors = Errors()
    target = parse_target(spec, "row", errors, str(spec.get("region", "")), source=source,
                          extra_regions=frozenset({str(spec.get("region", ""))}))
    if target is None:
        raise ValueError("; ".join(errors.report()))
    return target


def _reason(exc: Exception) -> str:
    """sqlite's message, or an OSError as "File exists (/the/path)", without the errno."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc)


class RegistrationStore:
    """The registration API's targets in SQLite (WAL mode, one transaction per change), so they
    survive restarts. Raises :class:`RegistrationStoreError` when the file cannot be used."""

    def __init__(self, path: str, drops: DropCounter | None = None,
                 faults: StorageErrors | None = None) -> None:
        """``drops`` counts unreadable rows; ``faults`` counts failed writes (store
        ``registrations``), each also logged."""
        import sqlite3  # here: without a store, sqlite3 is never loaded (~1 MB of RSS)
        self.path = path
        self._drops = drops or DropCounter()
        self._faults = faults or StorageErrors()
        self._lock = threading.Lock()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._check()
        except (sqlite3.Error, OSError, RegistrationStoreError) as exc:
            with contextlib.suppress(AttributeError, sqlite3.Error):
                self._db.close()
            raise RegistrationStoreError(f"registration.db_path {path}: {_reason(exc)}") from None

    def _check(self) -> None:
        """Fail at start, not later: damaged pages, a foreign table layout, no write access."""
        import sqlite3
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check").fetchall()]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(f"database is damaged: {problems[0]}")
        self._db.execute(_SCHEMA)
        self._db.execute("SELECT id, spec, created, expires_at FROM targets LIMIT 1").fetchall()
        if not os.access(self.path, os.W_OK):
            raise OSError("not writable")
        self._writable_shm()
        self._db.execute("BEGIN IMMEDIATE")  # takes the write lock: proves we can write
        self._db.execute("ROLLBACK")

    def load(self) -> list[Registered]:
        """Every stored registration."""
        with self._lock:
            rows = self._db.execute("SELECT spec, created, expires_at FROM targets").fetchall()
        out = []
        for spec, created, expires in rows:
            try:
                if not isinstance(created, int | float) or not (
                        expires is None or isinstance(expires, int | float)):
                    raise ValueError("created or expires_at is not a number")
                out.append(Registered(target_from_json(spec), created, expires))
            except (ValueError, KeyError, TypeError, RecursionError) as exc:
                self._drops.add("stored_row")
                log.error("registration database: skipping an unreadable row: %s",
                          show(str(exc)))
        return out

    def _writable_shm(self) -> None:
        """Refuse a write whose shared-memory file cannot be written: SQLite maps ``-shm`` and
        a file it cannot extend (immutable, read-only) kills the process with SIGBUS, without a
        log line. Raises RegistrationStoreError naming the file instead."""
        shm = self.path + "-shm"
        try:
            with open(shm, "r+b"):
                pass
        except FileNotFoundError:
            return  # SQLite creates it
        except OSError as exc:
            raise RegistrationStoreError(f"registration database write refused: {shm}: "
                                         f"{exc.strerror or exc}") from None

    def upsert(self, items: list[Registered]) -> None:
        """Insert or refresh targets in one transaction (idempotent by identity)."""
        import sqlite3
        rows = [(r.target.id, target_to_json(r.target), r.created, r.expires_at) for r in items]
        with self._lock:
            try:
                self._writable_shm()
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO targets(id, spec, created, expires_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(id) DO UPDATE SET spec=excluded.spec, "
                    "expires_at=excluded.expires_at", rows)
                self._db.execute("COMMIT")
            except RegistrationStoreError as exc:
                self._fault(str(exc))
                raise
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise self._write_failed(exc) from None

    def delete(self, ids: list[str]) -> int:
        """Delete registrations by Target.id; returns how many existed."""
        import sqlite3
        with self._lock:
            try:
                self._writable_shm()
                cursor = self._db.executemany("DELETE FROM targets WHERE id = ?",
                                              [(i,) for i in ids])
            except RegistrationStoreError as exc:
                self._fault(str(exc))
                raise
            except sqlite3.Error as exc:
                raise self._write_failed(exc) from None
            return cursor.rowcount

    def _fault(self, message: str) -> None:
        """Log a failed write and count it (``trtc_exporter_storage_errors_total``)."""
        log.error("%s", message)
        self._faults.add("registrations")

    def _write_failed(self, exc: sqlite3.Error) -> RegistrationStoreError:
        """The error for a write SQLite refused, logged and counted."""
        error = RegistrationStoreError(f"registration database write failed: {exc}")
        self._fault(str(error))
        return error

    def changed(self) -> bool:
        """Never: this process is the only writer of its database."""
        return False

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
