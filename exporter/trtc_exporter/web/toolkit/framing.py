"""HTTP/1.1 request framing, checked before anything is processed (RFC 9112).

The server reads a request's head completely before a worker sees it, then :func:`check_head`
decides how long the body is — or refuses the request when the framing is ambiguous, the kind
of request that smuggling and desync attacks are made of:

- a head must end with an empty line; a connection that closes before is never processed;
- obs-fold (a header line starting with a space or tab) is refused (RFC 9112 §5.2);
- white space between a field name and its colon is refused (RFC 9112 §5.1);
- ``Content-Length`` must be digits; several values (repeated headers or a list) must all be
  equal, else 400 (RFC 9110 §8.6, RFC 9112 §6.3 item 5);
- ``Transfer-Encoding`` together with ``Content-Length`` is refused (RFC 9112 §6.3 item 3 allows
  a server to reject, and it is the smuggling vector); a coding other than a single ``chunked``
  gets 501 (RFC 9112 §6.1: not understood); in an HTTP/1.0 request it is refused (§6.1);
- a chunked body with a bad size line, missing CRLF or too many bytes is refused with 400.

:func:`read_chunked` decodes a chunked body; :func:`printable` escapes text for logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

MAX_HEAD_BYTES = 32 * 1024
"""Request line plus headers; Prometheus sends < 1 KiB, browsers with cookies a few KiB."""

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(;[^\r\n]*)?")
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


class FramingError(ValueError):
    """A request whose framing is refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Framing:
    """How the body of a checked request is delimited: ``length`` bytes, or chunked."""

    length: int = 0
    chunked: bool = False


def head_end(buffer: bytes | bytearray) -> int:
    """Index just past the empty line ending the head (CRLF or bare LF), or -1 if incomplete."""
    for end in (b"\r\n\r\n", b"\n\n", b"\n\r\n"):
        index = buffer.find(end)
        if index >= 0:
            return index + len(end)
    return -1


def printable(text: str) -> str:
    """``text`` with control characters as ``\\xNN``: safe for one log line."""
    return text.translate(_CONTROL)


def _lines(head: bytes) -> list[str]:
    text = head.decode("latin-1")  # RFC 9110 §5.5: field values are octets; latin-1 is 1:1
    return [line.removesuffix("\r") for line in text.split("\n")]


def check_head(head: bytes) -> Framing:
    """The body framing of a complete head; :class:`FramingError` when it must be refused."""
    lines = _lines(head.rstrip(b"\r\n"))
    request_line = lines[0]
    parts = request_line.split(" ")
    if len(parts) != 3 or not request_line.isprintable() or not parts[2].startswith("HTTP/"):
        raise FramingError(400, "malformed request line")
    lengths: set[str] = set()
    codings: list[str] | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            raise FramingError(400, "obsolete line folding in a header")
        name, colon, value = line.partition(":")
        if not colon or not _TOKEN.fullmatch(name):
            raise FramingError(400, "malformed header line")
        lowered = name.lower()
        if lowered == "content-length":
            lengths.update(v.strip(" \t") for v in value.split(","))
        elif lowered == "transfer-encoding":
            codings = (codings or []) + [v.strip(" \t").lower() for v in value.split(",")]
    return _framing(parts[2], lengths, codings)


def _framing(version: str, lengths: set[str], codings: list[str] | None) -> Framing:
    if codings is not None:
        if lengths:
            raise FramingError(400, "both Content-Length and Transfer-Encoding")
        if version == "HTTP/1.0":
            raise FramingError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if codings != ["chunked"]:
            raise FramingError(501, "only the chunked transfer coding is supported")
        return Framing(chunked=True)
    if not lengths:
        return Framing()
    if len(lengths) > 1 or not all(v.isascii() and v.isdigit() for v in lengths):
        raise FramingError(400, "invalid or conflicting Content-Length")
    return Framing(length=int(next(iter(lengths))))


class LineReader(Protocol):
    """What :func:`read_chunked` reads from: the connection's buffered reader."""

    def readline(self, limit: int = -1) -> bytes:
        """One line, at most ``limit`` bytes (all when -1), ending with ``\n`` unless at end of
        stream."""

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (to end of stream when -1)."""


def read_chunked(reader: LineReader, max_bytes: int) -> bytes:
    """Decode a chunked body of at most ``max_bytes``; FramingError 400/413 when it is bad."""
    body = bytearray()
    while True:
        line = reader.readline(1024)
        if not line.endswith(b"\n"):
            raise FramingError(400, "chunked body: incomplete chunk size line")
        match = _CHUNK_SIZE.fullmatch(line.rstrip(b"\r\n"))
        if match is None:
            raise FramingError(400, "chunked body: bad chunk size")
        size = int(match.group(1), 16)
        if size == 0:
            break
        if len(body) + size > max_bytes:
            raise FramingError(413, f"body: larger than {max_bytes} bytes")
        data = reader.read(size)
        if len(data) != size or reader.readline(3) not in (b"\r\n", b"\n"):
            raise FramingError(400, "chunked body: chunk data does not match its size")
        body += data
    for _ in range(64):  # trailer fields are read and ignored (RFC 9112 §7.1.2)
        line = reader.readline(MAX_HEAD_BYTES)
        if line in (b"\r\n", b"\n"):
            return bytes(body)
        if not line.endswith(b"\n"):
            break
    raise FramingError(400, "chunked body: bad trailer section")
