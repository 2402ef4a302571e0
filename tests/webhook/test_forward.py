"""The forward relay: persisted queue, order per task, backoff, restarts, bounds, faults."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.webhook.downstream import Downstream
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.webhook import ForwardConfig
from trtc_exporter.metrics import StorageErrors
from trtc_exporter.webhook.forward import Forwarder
from trtc_exporter.webhook.forward_store import ForwardStorageError


@pytest.fixture
def downstream() -> Iterator[Downstream]:
    server = Downstream().start()
    yield server
    server.stop()


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never through a proxy configured on the test machine
    return session


def _forwarder(db: Path, url: str, clock: FakeClock, **options: object) -> Forwarder:
    config = ForwardConfig(url, **options)  # type: ignore[arg-type]
    return Forwarder(config, str(db), clock, _session())


def _enqueue(forwarder: Forwarder, items: list[tuple[str, bytes]]) -> None:
    for task, raw in items:
        assert forwarder.enqueue(raw, "sig-" + task, "1400123456", f"1400123456/{task}")


EVENTS = [("a", b'{"n":1}'), ("b", b'{"n":2}'), ("a", b'{"n":3}'), ("b", b'{"n":4}'),
          ("a", b'{"n":5}')]


def test_callbacks_are_relayed_unchanged_in_order(tmp_path: Path, downstream: Downstream) -> None:
    """Body, Sign and SdkAppId arrive as given; rows are gone after the 2xx."""
    clock = FakeClock()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(forwarder, EVENTS)
    assert forwarder.stats().queued == 5
    assert forwarder.deliver_due() == 5
    assert downstream.received == [(raw, "sig-" + task, "1400123456") for task, raw in EVENTS]
    stats = forwarder.stats()
    assert (stats.delivered, stats.queued, stats.attempt_failures) == (5, 0, 0)
    forwarder.stop()
    with sqlite3.connect(tmp_path / "q.db") as db:
        assert db.execute("SELECT COUNT(*) FROM forward_queue").fetchone() == (0,)


def test_a_down_server_is_retried_with_backoff_until_it_returns(tmp_path: Path,
                                                                 downstream: Downstream) -> None:
    """While down, one probe per backoff step; once up, everything is delivered once, in order."""
    clock = FakeClock()
    downstream.stop()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(forwarder, EVENTS)
    delays = []
    for _ in range(8):  # backoff 1, 2, 4, ... capped at 60 s
        assert forwarder.deliver_due() == 1
        assert forwarder.deliver_due() == 0  # paused: nothing is knocked on meanwhile
        delays.append(forwarder.next_wait())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    downstream.start()
    forwarder.deliver_due()
    assert [raw for raw, _, _ in downstream.received] == [raw for _, raw in EVENTS]
    assert forwarder.stats().attempt_failures == 8
    forwarder.stop()


def test_the_backoff_cap_is_configurable(tmp_path: Path, downstream: Downstream) -> None:
    """webhook.forward_backoff_max caps the doubling: 1, 2, 4, 4, … with a 4 s cap."""
    clock = FakeClock()
    downstream.stop()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock, backoff_max=4.0)
    _enqueue(forwarder, EVENTS[:1])
    delays = []
    for _ in range(5):
        assert forwarder.deliver_due() == 1
        delays.append(forwarder.next_wait())
        clock.advance(delays[-1])
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    forwarder.stop()


def test_a_restart_in_the_middle_loses_nothing(tmp_path: Path, downstream: Downstream) -> None:
    """A new Forwarder on the same file delivers what the old one had not, once each."""
    clock = FakeClock()
    first = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(first, EVENTS[:2])
    first.deliver_due()
    downstream.stop()
    _enqueue(first, EVENTS[2:])
    first.deliver_due()
    first.stop()
    second = _forwarder(tmp_path / "q.db", downstream.url, clock)
    assert second.stats().queued == 3
    downstream.start()
    clock.advance(1)
    second.deliver_due()
    assert [raw for raw, _, _ in downstream.received] == [raw for _, raw in EVENTS]
    assert second.stats().queued == 0
    second.stop()


def test_a_refused_callback_holds_back_only_its_own_task(tmp_path: Path,
                                                         downstream: Downstream) -> None:
    """A 4xx for one task's callback delays that task's later ones, not other tasks."""
    clock = FakeClock()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(forwarder, [("a", b'{"poison":1}'), ("b", b'{"n":2}'), ("a", b'{"n":3}')])
    forwarder.deliver_due()
    assert [raw for raw, _, _ in downstream.received] == [b'{"n":2}']
    assert forwarder.stats().queued == 2


def test_a_callback_is_given_up_after_retry_for(tmp_path: Path, downstream: Downstream) -> None:
    """After retry_for the callback is dropped (counted as expired) and its task moves on."""
    clock = FakeClock()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock, retry_for=120.0)
    _enqueue(forwarder, [("a", b'{"poison":1}'), ("a", b'{"n":2}')])
    for _ in range(20):
        forwarder.deliver_due()
        clock.advance(forwarder.next_wait() or 1.0)
    stats = forwarder.stats()
    assert (stats.dropped["expired"], stats.delivered, stats.queued) == (1, 1, 0)
    assert [raw for raw, _, _ in downstream.received] == [b'{"n":2}']


def test_server_errors_pause_like_an_outage(tmp_path: Path, downstream: Downstream) -> None:
    """A 503 pauses all delivery for the backoff, as the server is unhealthy."""
    clock = FakeClock()
    downstream.status = 503
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(forwarder, EVENTS)
    assert forwarder.deliver_due() == 1
    downstream.status = 200
    clock.advance(1)
    assert forwarder.deliver_due() == 5


def test_the_queue_is_bounded(tmp_path: Path) -> None:
    """Beyond max_queued a callback is refused and counted, never raised."""
    forwarder = _forwarder(tmp_path / "q.db", "http://127.0.0.1:9/", FakeClock(), max_queued=2)
    assert forwarder.enqueue(b"1", None, "1", "1/a")
    assert forwarder.enqueue(b"2", None, "1", "1/a")
    assert not forwarder.enqueue(b"3", None, "1", "1/a")
    assert forwarder.stats().dropped["queue_full"] == 1


def test_latency_is_observed_from_enqueue_to_delivery(tmp_path: Path,
                                                      downstream: Downstream) -> None:
    """A callback delivered 3 s after it was queued lands in the 5 s bucket and above."""
    clock = FakeClock()
    forwarder = _forwarder(tmp_path / "q.db", downstream.url, clock)
    _enqueue(forwarder, EVENTS[:1])
    clock.advance(3)
    forwarder.deliver_due()
    stats = forwarder.stats()
    buckets = dict(stats.latency_buckets)
    assert (buckets[2.5], buckets[5.0], buckets[3600.0]) == (0, 1, 1)
    assert (stats.latency_sum, stats.latency_count) == (3.0, 1)


def test_an_unusable_queue_file_is_a_clear_error(tmp_path: Path) -> None:
    """A directory or a non-database file as queue path fails at start, naming the path."""
    with pytest.raises(ForwardStorageError, match=str(tmp_path)):
        Forwarder(ForwardConfig("http://x"), str(tmp_path), FakeClock())
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(ForwardStorageError, match=r"junk\.db: file is not a database"):
        Forwarder(ForwardConfig("http://x"), str(junk), FakeClock())


def test_a_storage_fault_later_is_counted_not_raised(tmp_path: Path) -> None:
    """Once the file is unusable, enqueue answers False and counts a storage drop, also counted
    as a fault of the forward_queue store."""
    faults = StorageErrors()
    forwarder = Forwarder(ForwardConfig("http://127.0.0.1:9/"), str(tmp_path / "q.db"),
                          FakeClock(), _session(), faults)
    forwarder.stop()
    assert not forwarder.enqueue(b"1", None, "1", "1/a")
    assert forwarder.stats().dropped["storage"] == 1
    assert forwarder.deliver_due() == 0
    assert faults.snapshot() == {"registrations": 0, "forward_queue": 1, "redis": 0}
