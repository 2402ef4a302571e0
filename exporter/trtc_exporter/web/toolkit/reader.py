"""The request reader a handler gets: the bytes the loop already read, then the socket.

``BaseHTTPRequestHandler`` reads its ``rfile`` with ``readline`` and ``read``; this reader gives it
the head the loop checked, then the body from the socket (blocking, under the socket's timeout),
and keeps what it read past the request (a pipelined next request) for the loop: ``leftover``.
A body cut short by the client raises :class:`IncompleteRequest`, so it is never processed.
"""

from __future__ import annotations

import socket

__all__ = ["BufferedSocketReader", "IncompleteRequest"]

_CHUNK = 65536


class IncompleteRequest(ConnectionError):
    """The client closed the connection before the request's body was complete."""


class BufferedSocketReader:
    """``readline``/``read`` over ``initial`` bytes followed by ``sock``."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self._sock = sock
        self._buffer = bytearray(initial)
        self._eof = False

    def _fill(self) -> bool:
        """Read once more from the socket; False at end of stream."""
        if self._eof:
            return False
        data = self._sock.recv(_CHUNK)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def readline(self, limit: int = -1) -> bytes:
        """One line with its newline, at most ``limit`` bytes; shorter at end of stream."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0 and (limit < 0 or end < limit):
                return self._take(end + 1)
            if 0 <= limit <= len(self._buffer):
                return self._take(limit)
            if not self._fill():
                return self._take(len(self._buffer))

    def read(self, size: int = -1) -> bytes:
        """Exactly ``size`` bytes (IncompleteRequest when the stream ends first); with a
        negative size, only what is buffered already (a request never reads to end of stream)."""
        if size < 0:
            return self._take(len(self._buffer))
        while len(self._buffer) < size:
            if not self._fill():
                raise IncompleteRequest(f"connection closed after {len(self._buffer)} of "
                                        f"{size} body bytes")
        return self._take(size)

    def read1(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes: what is buffered, else one read from the socket (b"" at end
        of stream), as ``io.BufferedReader.read1``."""
        if not self._buffer:
            self._fill()
        return self._take(len(self._buffer) if size < 0 else min(size, len(self._buffer)))

    def leftover(self) -> bytes:
        """Bytes read past what the handler consumed (the start of a next request)."""
        return bytes(self._buffer)

    def close(self) -> None:
        """Nothing to release: the connection belongs to the loop."""

    def _take(self, count: int) -> bytes:
        data = bytes(self._buffer[:count])
        del self._buffer[:count]
        return data
