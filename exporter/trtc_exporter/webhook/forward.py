"""``webhook.forward_to``: relay every verified callback, unchanged, to the operator's server.

The receiver only writes the callback to the on-disk queue (:mod:`.forward_store`) and answers
TRTC at once; a background thread posts the raw body with the ``Sign`` and ``SdkAppId`` headers as
received. A failed attempt is retried with exponential backoff (1 s doubling up to
``backoff_max``, ``webhook.forward_backoff_max``, default 60 s) for ``retry_for`` from its
first failed attempt (default 1 h, never less than TRTC's own one-minute
retry window, doc 66149); then it is given up and counted. A callback waiting behind another of
its task has not been tried yet, so its own window has not begun. Per task, callbacks go out in
the order they came in: a task's next callback waits until the one before it was delivered or
given up. Delivery is at least once: a
callback is sent again only if the queue file fails between a 2xx and the row's deletion.

Counters and the latency histogram are read with :meth:`Forwarder.stats` (a snapshot for a
collector); nothing here touches Prometheus.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from trtc_exporter.clock import Clock
from trtc_exporter.config.webhook import FORWARD_BACKOFF_MIN, ForwardConfig
from trtc_exporter.metrics import StorageErrors
from trtc_exporter.webhook.forward_store import ForwardStorageError, ForwardStore, Row

log = logging.getLogger(__name__)

BACKOFF_INITIAL = FORWARD_BACKOFF_MIN
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
DROP_REASONS = ("expired", "queue_full", "storage")
_IDLE_WAIT = 60.0  # re-check the queue at least this often even when nothing is due


@dataclass(frozen=True, slots=True)
class ForwardStats:
    """A snapshot: totals since start, the queue length now, latency from enqueue to 2xx."""

    delivered: int
    attempt_failures: int
    dropped: Mapping[str, int]  # reason (DROP_REASONS) → callbacks given up
    queued: int
    latency_buckets: tuple[tuple[float, int], ...]  # (upper bound s, cumulative count)
    latency_sum: float
    latency_count: int


class Forwarder:
    """Owns the queue file and the delivery thread. ``enqueue`` never raises and never waits on
    the downstream server; :meth:`deliver_due` is one synchronous delivery pass (tests call it
    with a fake clock; the thread calls it in a loop)."""

    def __init__(self, config: ForwardConfig, db_path: str, clock: Clock,
                 session: requests.Session | None = None,
                 faults: StorageErrors | None = None) -> None:
        """``faults`` counts queue-file faults after start (store ``forward_queue``)."""
        self._config, self._clock = config, clock
        self._faults = faults or StorageErrors()
        self._store = ForwardStore(db_path)  # raises ForwardStorageError at start
        self._session = session or requests.Session()
        self._lock = threading.Lock()
        self._queued = self._store.count()
        self._delivered = self._failures = 0
        self._dropped = dict.fromkeys(DROP_REASONS, 0)
        self._buckets = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._paused_until = 0.0
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, body: bytes, sign: str | None, sdk_app_id: str, task_key: str) -> bool:
        """Persist one verified callback for relaying; False (counted, logged) when refused."""
        with self._lock:
            if self._queued >= self._config.max_queued:
                self._dropped["queue_full"] += 1
                log.warning("webhook forward queue is full (%d); a callback is not relayed",
                            self._config.max_queued)
                return False
            try:
                self._store.add(task_key, body, sign, sdk_app_id, self._clock.time())
            except ForwardStorageError as exc:
                self._dropped["storage"] += 1
                self._faults.add("forward_queue")
                log.error("webhook forward queue write failed, a callback is not relayed: %s",
                          exc)
                return False
            self._queued += 1
        self._wake.set()
        return True

    def deliver_due(self) -> int:
        """Try every callback that is due now, oldest first; returns the number of attempts."""
        attempts = 0
        while not self._stop.is_set():
            now = self._clock.time()
            if now < self._paused_until:
                break
            try:
                row = self._store.due(now)
                if row is None:
                    break
                attempts += 1
                self._attempt(row, now)
            except ForwardStorageError as exc:
                self._faults.add("forward_queue")
                log.error("webhook forward queue read/write failed: %s", exc)
                self._paused_until = now + self._config.backoff_max
                break
        return attempts

    def _attempt(self, row: Row, now: float) -> None:
        if row.first_failure is not None and now - row.first_failure > self._config.retry_for:
            self._forget(row, "expired")
            log.warning("webhook forward: gave up a callback of %s after %d attempts over "
                        "%.0fs", row.task_key, row.attempts, now - row.first_failure)
            return
        ok, reachable = self._post(row)
        if ok:
            self._store.delete(row.seq)
            self._record_delivery(self._clock.time() - row.enqueued)
            return
        with self._lock:
            self._failures += 1
        delay = min(BACKOFF_INITIAL * 2 ** min(row.attempts, 30), self._config.backoff_max)
        self._store.reschedule(row.seq, now, now + delay)
        if not reachable:  # the server is down: do not knock once per task
            self._paused_until = now + delay

    def _post(self, row: Row) -> tuple[bool, bool]:
        """(delivered, server reachable and healthy)."""
        headers = {"Content-Type": "application/json", "SdkAppId": row.sdk_app_id}
        if row.sign is not None:
            headers["Sign"] = row.sign
        timeout = self._config.timeout
        try:
            response = self._session.post(self._config.url, data=row.body, headers=headers,
                                          timeout=(timeout, timeout), allow_redirects=False)
            response.close()
        except requests.RequestException as exc:
            log.debug("webhook forward attempt failed: %s", type(exc).__name__)
            return False, False
        code = response.status_code
        return 200 <= code < 300, code < 500 and code != 429

    def _forget(self, row: Row, reason: str) -> None:
        self._store.delete(row.seq)
        with self._lock:
            self._queued -= 1
            self._dropped[reason] += 1

    def _record_delivery(self, latency: float) -> None:
        with self._lock:
            self._queued -= 1
            self._delivered += 1
            self._latency_sum += max(latency, 0.0)
            for index, bound in enumerate(LATENCY_BUCKETS):
                if latency <= bound:
                    self._buckets[index] += 1

    def stats(self) -> ForwardStats:
        """A consistent snapshot of the forwarding counters and latency histogram."""
        with self._lock:
            return ForwardStats(
                delivered=self._delivered, attempt_failures=self._failures,
                dropped=dict(self._dropped), queued=self._queued,
                latency_buckets=tuple(zip(LATENCY_BUCKETS, self._buckets, strict=True)),
                latency_sum=self._latency_sum, latency_count=self._delivered)

    def next_wait(self) -> float:
        """Seconds until something may be due (for the thread's sleep)."""
        now = self._clock.time()
        try:
            due = self._store.next_attempt()
        except ForwardStorageError:
            due = None
        wake = max(due if due is not None else now + _IDLE_WAIT, self._paused_until)
        return min(max(wake - now, 0.0), _IDLE_WAIT)

    def start(self) -> None:
        """Start the delivery thread (daemon; ``stop`` ends it)."""
        self._thread = threading.Thread(target=self._run, name="webhook-forward", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (rows stay on disk for the next start) and close the file."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._store.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.deliver_due()
            except Exception:  # the relay must outlive any surprise; the rows stay queued
                log.exception("webhook forward pass failed")
                self._paused_until = self._clock.time() + self._config.backoff_max
            self._clock.wait(self._wake, self.next_wait())
