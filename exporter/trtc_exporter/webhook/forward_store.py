"""The forward queue on disk: SQLite in WAL mode, one row per callback still to relay.

A row is written before TRTC gets its 200 and deleted only after the downstream answered 2xx (or
the callback was given up after ``webhook.forward_retry_for``), so a restart loses nothing.
Order per task is kept by always offering the oldest row of each task first (:meth:`due`).
Every SQLite or file system fault becomes a :class:`ForwardStorageError` naming the path.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlite3

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS forward_queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, task_key TEXT NOT NULL, body BLOB NOT NULL,
        sign TEXT, sdk_app_id TEXT NOT NULL, enqueued REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt REAL NOT NULL, first_failure REAL)""",
    "CREATE INDEX IF NOT EXISTS forward_queue_task ON forward_queue (task_key, seq)",
)
_HEADS = ("FROM forward_queue q WHERE q.seq = "
          "(SELECT MIN(seq) FROM forward_queue WHERE task_key = q.task_key)")


class ForwardStorageError(Exception):
    """The queue database failed; the message names the path and SQLite's reason."""


@dataclass(frozen=True, slots=True)
class Row:
    """One queued callback: the raw body and ``Sign`` header as received, kept per task in order."""
    seq: int
    task_key: str
    body: bytes
    sign: str | None
    sdk_app_id: str
    enqueued: float  # Unix seconds
    attempts: int  # failed attempts so far
    first_failure: float | None  # Unix seconds of the first failed attempt


class ForwardStore:
    """Thread-safe access to the queue file (one connection, one lock)."""

    def __init__(self, path: str) -> None:
        import sqlite3  # here: without a store, sqlite3 is never loaded (~1 MB of RSS)
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self._db.execute(statement)
            self._db.execute("SELECT seq, task_key, body, sign, sdk_app_id, enqueued, attempts, "
                             "next_attempt, first_failure FROM forward_queue LIMIT 1").fetchall()
            self._db.execute("BEGIN IMMEDIATE")  # proves we may write, at start
            self._db.execute("ROLLBACK")
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise ForwardStorageError(f"{path}: {_reason(exc)}") from None

    def add(self, task_key: str, body: bytes, sign: str | None, sdk_app_id: str,
            enqueued: float) -> None:
        """Queue a callback, due at once (``enqueued``: Unix s); raises ForwardStorageError."""
        self._run("INSERT INTO forward_queue (task_key, body, sign, sdk_app_id, enqueued, "
                  "next_attempt) VALUES (?, ?, ?, ?, ?, ?)",
                  (task_key, body, sign, sdk_app_id, enqueued, enqueued))

    def due(self, now: float) -> Row | None:
        """The oldest row that heads its task and may be tried at ``now``."""
        rows = self._run("SELECT q.seq, q.task_key, q.body, q.sign, q.sdk_app_id, q.enqueued, "
                         f"q.attempts, q.first_failure {_HEADS} AND q.next_attempt <= ? "
                         "ORDER BY q.seq LIMIT 1",
                         (now,))
        return Row(*rows[0]) if rows else None

    def next_attempt(self) -> float | None:
        """When the earliest task head may be tried next (None: the queue is empty)."""
        rows = self._run(f"SELECT MIN(q.next_attempt) {_HEADS}", ())
        return rows[0][0] if rows else None

    def reschedule(self, seq: int, failed_at: float, next_attempt: float) -> None:
        """Count a failed attempt at ``failed_at`` and set when to try again."""
        self._run("UPDATE forward_queue SET attempts = attempts + 1, next_attempt = ?, "
                  "first_failure = COALESCE(first_failure, ?) WHERE seq = ?",
                  (next_attempt, failed_at, seq))

    def delete(self, seq: int) -> None:
        """Remove the delivered (or dropped) row ``seq``."""
        self._run("DELETE FROM forward_queue WHERE seq = ?", (seq,))

    def count(self) -> int:
        """How many callbacks are queued."""
        return int(self._run("SELECT COUNT(*) FROM forward_queue", ())[0][0])

    def close(self) -> None:
        """Close the database; idempotent, never raises."""
        import sqlite3
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
                self._db = None

    def _run(self, sql: str, args: tuple[object, ...]) -> list[tuple[Any, ...]]:
        import sqlite3
        with self._lock:
            if self._db is None:
                raise ForwardStorageError(f"{self.path}: the queue is closed")
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise ForwardStorageError(f"{self.path}: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
