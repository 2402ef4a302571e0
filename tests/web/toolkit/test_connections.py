"""The connection loop's sleep: it wakes for connections and their deadlines, not on a tick."""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Any

from tests.waiting import until
from trtc_exporter.clock import FakeClock
from trtc_exporter.web.toolkit.connections import ConnectionLoop, Limits, Request


class RecordingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    """The platform's selector, recording the timeout of every wait."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[float | None] = []

    def select(self, timeout: float | None = None) -> Any:
        self.timeouts.append(timeout)
        return super().select(timeout)


def _never(request: Request) -> bool:
    raise AssertionError("no request is sent in these tests")


def _loop(clock: FakeClock) -> tuple[ConnectionLoop, RecordingSelector, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    loop = ConnectionLoop(listener, _never, lambda: None, lambda: (),
                          Limits(header_timeout=7.0), clock)
    recording = RecordingSelector()
    loop._selector = recording  # before run() registers anything
    return loop, recording, listener


def test_an_idle_loop_sleeps_its_whole_poll_interval_and_a_connection_until_its_deadline(
) -> None:
    """With no connection the loop waits the whole poll interval (it used to wake 10 times a
    second to sweep); an open connection shortens the wait to its deadline (header timeout)."""
    clock = FakeClock(100.0)
    loop, recording, listener = _loop(clock)
    thread = threading.Thread(target=loop.run, args=(30.0,), daemon=True)
    thread.start()
    try:
        assert until(lambda: 30.0 in recording.timeouts)
        client = socket.create_connection(listener.getsockname())
        try:
            assert until(lambda: any(t is not None and abs(t - 7.0) < 1e-6
                                      for t in recording.timeouts))
            assert until(lambda: loop.open_connections == 1)
            clock.advance(7.0)  # the deadline passed: the next wake closes it
            loop._wake_w.send(b"x")
            assert until(lambda: loop.open_connections == 0)
        finally:
            client.close()
    finally:
        loop.stop()
        loop.close()
        listener.close()
        thread.join(5.0)
    assert all(t is not None and t >= 0 for t in recording.timeouts)
    assert 0.1 not in recording.timeouts


def test_without_a_poll_interval_an_idle_loop_sleeps_until_woken() -> None:
    """The default: no connection, no deadline, so the wait has no timeout at all (an idle
    exporter's web thread does not wake twice a second); stop() still ends it at once."""
    loop, recording, listener = _loop(FakeClock(100.0))
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        assert until(lambda: None in recording.timeouts)
    finally:
        loop.stop()
        thread.join(5.0)
        loop.close()
        listener.close()
    assert not thread.is_alive()
    assert all(t is None or t == 0.0 for t in recording.timeouts)
