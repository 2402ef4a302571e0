"""When a request really arrived: the kernel's receive timestamp of its first byte.

Why: the simulator is a Python process. Under load — a ``huge_body`` fault encoding megabytes of
JSON while holding the GIL, a new connection's handler thread starting, headers parsed in Python —
a handler can run hundreds of milliseconds after its request arrived, and several handlers then
run back to back. Stamped with the clock when the handler runs, requests that arrived evenly look
late and bunched, and the simulator's one-second window throttled traffic that a packet capture
showed at exactly the limit (issue 15 item 13). The kernel stamps every received packet when it
arrives, whatever the process is doing, so that is the stamp the rate window uses.

How: ``SO_TIMESTAMPNS`` on the listening socket (accepted sockets inherit it) makes the kernel
keep a receive time per packet; before a request line is read, ``recvmsg(..., MSG_PEEK)`` of one
byte returns the time of the packet holding the request's first byte (``SCM_TIMESTAMPNS``, a
``struct timespec`` of CLOCK_REALTIME; Linux ``socket(7)``). When no stamp is available (another
OS, or the request line was already buffered), the handler's clock reading is used instead and
counted as such in ``/_sim/stats`` (``arrival_stamps``).
"""

from __future__ import annotations

import io
import socket
import struct
import sys
import time

from trtc_exporter.clock import Clock, SystemClock

SO_TIMESTAMPNS = 35
"""Linux value of SO_TIMESTAMPNS (= SCM_TIMESTAMPNS); Python's socket module does not export it."""

_TIMESPEC = struct.Struct("@qq")
_ANCILLARY = socket.CMSG_SPACE(_TIMESPEC.size)


def enable(sock: socket.socket) -> bool:
    """Ask the kernel to stamp received packets; False where the option does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def _stamp(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanos = (int(x) for x in _TIMESPEC.unpack_from(data))
            if seconds or nanos:  # packets received before stamping was enabled carry zero
                return seconds + nanos / 1e9
    return None


class StampedReader(io.RawIOBase):
    """A socket's receive side that records the kernel time of the first byte after ``arm()``."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self._armed = False
        self.stamp: float | None = None
        """CLOCK_REALTIME seconds of the first byte read since ``arm()``, or None."""

    def arm(self) -> None:
        """The next raw read starts a new request: stamp it."""
        self._armed = True
        self.stamp = None

    def readable(self) -> bool:
        """Always True: this raw reader exists to be read (``io.RawIOBase`` asks)."""
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        """Receive into ``buffer`` (the bytes read; 0 at end of stream); when armed, first peek
        one byte to stamp its packet's kernel receive time."""
        if self._armed:
            self._armed = False
            # peek one byte: its packet's time, not that of a later packet read in the same call
            _, ancillary, _, _ = self._sock.recvmsg(1, _ANCILLARY, socket.MSG_PEEK)
            self.stamp = _stamp(ancillary)
        return self._sock.recv_into(buffer)


def monotonic_arrival(stamp: float | None, clock: Clock) -> tuple[float, str]:
    """The arrival on ``clock.monotonic()``'s scale and its source, ``kernel`` or ``handler``.

    With a stamp: now minus the stamp's age; otherwise now.

    The kernel's stamp is CLOCK_REALTIME, so its age is measured against the real wall clock and
    only applies to a ``SystemClock``: on a FakeClock no time passes between a packet and its
    handler, so "now" is the exact arrival. A negative age (a wall clock step) counts as 0.
    """
    now = clock.monotonic()
    if stamp is None or not isinstance(clock, SystemClock):
        return now, "handler"
    return now - max(0.0, time.time() - stamp), "kernel"
