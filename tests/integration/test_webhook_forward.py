"""The forward relay's thread in real time: a downstream that is down for a while, a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.webhook.downstream import Downstream
from trtc_exporter.clock import SYSTEM_CLOCK
from trtc_exporter.config.webhook import ForwardConfig
from trtc_exporter.webhook.forward import Forwarder

pytestmark = pytest.mark.integration


def _forwarder(db: Path, url: str) -> Forwarder:
    session = requests.Session()
    session.trust_env = False
    forwarder = Forwarder(ForwardConfig(url, timeout=1.0), str(db), SYSTEM_CLOCK, session)
    forwarder.start()
    return forwarder


def _wait_for(predicate: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_down_then_up_with_a_restart_delivers_each_callback_once_in_order(tmp_path: Path) -> None:
    """Callbacks queued while the server is down, across a restart, arrive once each, in order."""
    downstream = Downstream().start()
    downstream.stop()  # down from the start: connection refused
    events = [(f"t{i % 3}", f'{{"n":{i}}}'.encode()) for i in range(30)]
    first = _forwarder(tmp_path / "q.db", downstream.url)
    for task, raw in events[:15]:
        assert first.enqueue(raw, "s", "1400123456", f"1400123456/{task}")
    time.sleep(1.5)  # a few failed probes with backoff
    assert first.stats().attempt_failures >= 1
    first.stop()
    second = _forwarder(tmp_path / "q.db", downstream.url)
    for task, raw in events[15:]:
        assert second.enqueue(raw, "s", "1400123456", f"1400123456/{task}")
    downstream.start()
    try:
        _wait_for(lambda: len(downstream.received) >= 30, 20.0)
        time.sleep(0.3)  # nothing more arrives
        got = [raw for raw, _, _ in downstream.received]
        assert sorted(got) == sorted(raw for _, raw in events)  # each exactly once
        for task in ("t0", "t1", "t2"):  # and in order within each task
            mine = [raw for name, raw in events if name == task]
            assert [raw for raw in got if raw in mine] == mine
        assert second.stats().queued == 0
    finally:
        second.stop()
        downstream.stop()
