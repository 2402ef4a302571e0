"""Kernel arrival stamps of the simulator's sockets (real loopback sockets, no sleeping)."""

from __future__ import annotations

import io
import socket
import sys
import time
from collections.abc import Iterator

import pytest

from trtc_exporter.clock import SYSTEM_CLOCK, FakeClock
from trtc_exporter.simulator import arrival

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux socket API")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    listener = socket.create_server(("127.0.0.1", 0))
    assert arrival.enable(listener)
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    server.settimeout(5)
    yield client, server
    for sock in (client, server, listener):
        sock.close()


def test_stamp_is_when_the_bytes_were_sent_not_when_they_are_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """The first byte's kernel stamp falls between the send's start and end, before the read."""
    client, server = pair
    reader = arrival.StampedReader(server)
    before = time.time()
    client.sendall(b"POST / HTTP/1.1\r\n\r\n")
    after = time.time()
    sum(range(200_000))  # the handler runs later than the packet arrived
    reader.arm()
    line = io.BufferedReader(reader).readline()
    assert line == b"POST / HTTP/1.1\r\n"
    assert reader.stamp is not None
    assert before - 0.001 <= reader.stamp <= after + 0.001 < time.time()


def test_each_armed_request_on_a_kept_alive_connection_gets_its_own_stamp(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Re-arming before each request stamps every request, not only the first one."""
    client, server = pair
    reader = arrival.StampedReader(server)
    rfile = io.BufferedReader(reader)
    stamps = []
    for _ in range(2):
        client.sendall(b"GET / HTTP/1.1\r\n")
        reader.arm()
        rfile.readline()
        stamps.append(reader.stamp)
    assert None not in stamps
    assert stamps[0] is not None and stamps[1] is not None and stamps[0] <= stamps[1]


def test_unarmed_reads_keep_the_request_stamp(pair: tuple[socket.socket, socket.socket]) -> None:
    """Reading a body after the request line does not move the request's stamp."""
    client, server = pair
    reader = arrival.StampedReader(server)
    rfile = io.BufferedReader(reader, buffer_size=4)
    client.sendall(b"POST / HTTP/1.1\r\n")
    reader.arm()
    rfile.read(4)
    first = reader.stamp
    client.sendall(b"body")
    rfile.read(14)
    assert first is not None and reader.stamp == first


def test_arrival_is_now_minus_the_stamps_age_on_the_system_clock() -> None:
    """On the system clock, a stamp 0.3 s old puts the arrival 0.3 s before now."""
    now = SYSTEM_CLOCK.monotonic()
    arrived, source = arrival.monotonic_arrival(time.time() - 0.3, SYSTEM_CLOCK)
    assert source == "kernel"
    assert now - 0.35 < arrived < now - 0.25


def test_fake_clock_and_missing_stamps_use_the_handlers_time() -> None:
    """Without a stamp, or on a FakeClock where no time passes, the arrival is the clock's now."""
    clock = FakeClock()
    assert arrival.monotonic_arrival(time.time() - 5, clock) == (clock.monotonic(), "handler")
    now, source = arrival.monotonic_arrival(None, SYSTEM_CLOCK)
    assert source == "handler" and abs(now - SYSTEM_CLOCK.monotonic()) < 0.1
