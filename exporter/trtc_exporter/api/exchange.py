"""One HTTP/1.1 request and its answer on a connected socket: the request written in one
``sendall``, the answer parsed by httptools (llhttp, the parser of Node.js), all within the
attempt's deadline.

Why not ``http.client`` for the exchange (docs/performance.md, issue 16 goal 5): measured paced
at 19.6 requests/s against the simulator, one request and answer through ``http.client`` cost
0.50-0.59 ms of CPU, through this module 0.27-0.34 ms, a raw socket 0.15-0.25 ms; the request's
header checks, its two writes, the response object and the ``email`` header parser are most of
the difference. ``http.client`` still makes the connections (TCP, TLS, a proxy's tunnel)
in ``transport.py``.

What the parser does not decide is decided here as ``http.client`` did: interim 1xx answers are
skipped (a 101 is an answer: this client never asks to switch protocols); an answer head may
hold at most 100 header lines within 64 KiB (http.client allowed 64 KiB per line; the API's
heads are under 1 KiB), and the bytes before a head completes, interim answers included, at
most 64 KiB; chunk size lines, extensions and trailers get a bounded allowance (the parser
holds an unfinished line whole); a 200's body may be at most ``max_body`` bytes; an answer whose
length is neither given nor chunked ends when the server closes. Header values go out only as
Latin-1 without CR, LF or NUL (a ValueError naming the header, never holding its value): no
value can add a header or a request.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable

import httptools

MAX_HEAD_BYTES = 65536  # as http.client: _MAXLINE
MAX_HEADERS = 100  # as http.client: _MAXHEADERS
_BAD_VALUE = re.compile("[\r\n\0]|[^\x00-\xff]")  # a line break, a NUL, or beyond Latin-1
_BAD_NAME = re.compile("[:\r\n\0 ]|[^\x00-\xff]")
_RECV = 65536  # bytes asked of each socket read


Result = tuple[int, str | None, bytes, bool]  # status, Date, body, whether to keep the connection


class TransportError(Exception):
    """No HTTP answer: ``code`` is the ApiFailure code (``ConnectionError``, ``Timeout``,
    ``InvalidResponse``), the message says which failure; ``date`` is the answer's ``Date``
    header when its head had arrived (a body cut off or too large), else None."""

    def __init__(self, code: str, message: str, date: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.date = date


def request_bytes(target: str, headers: dict[str, str], body: bytes) -> bytes:
    """The POST request as written: request line, ``Accept-Encoding: identity`` (no compressed
    answer), ``headers`` in their order, ``Content-Length``, then ``body``. Raises ValueError
    for a header value with CR, LF or NUL or beyond Latin-1, naming the header, never the
    value (nor holding it: no exception's attributes carry the request)."""
    # one search over all values and one over all names: a loop per header was a measurable
    # share of the request's CPU (issue 16); the slow path finds the header to name
    if _BAD_VALUE.search("".join(headers.values())) or _BAD_NAME.search("".join(headers)):
        raise ValueError(f"Invalid header {_first_bad(headers)!r}")  # the name: values are secret
    fields = "".join([f"{name}: {value}\r\n" for name, value in headers.items()])
    head = (f"POST {target} HTTP/1.1\r\nAccept-Encoding: identity\r\n{fields}"
            f"Content-Length: {len(body)}\r\n\r\n")
    try:
        return head.encode("latin-1") + body
    except UnicodeEncodeError:  # the target: its message and .object would carry the request
        raise ValueError("Invalid header 'target': not Latin-1") from None


def _first_bad(headers: dict[str, str]) -> str:
    return next(name for name, value in headers.items()
                if _BAD_VALUE.search(value) or _BAD_NAME.search(name))


class _Trailing(Exception):
    """Raised inside the parser to stop it at bytes that follow the answer."""


class _Answer:
    """httptools' callbacks: the status, Date and body of the final (non-1xx) answer."""

    __slots__ = (
        "chunks",
        "complete",
        "counted",
        "date",
        "framed",
        "head",
        "head_size",
        "headers",
        "keep",
        "limited",
        "max_body",
        "parser",
        "size",
        "status",
        "trailing",
    )

    parser: httptools.HttpResponseParser
    status: int
    date: str | None
    chunks: list[bytes]
    counted: int
    size: int
    head: bool
    headers: int
    head_size: int
    complete: bool
    trailing: bool
    limited: bool
    max_body: int
    framed: bool
    keep: bool

    def __init__(self, max_body: int) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.max_body = max_body
        self.trailing = False
        self._reset()

    def _reset(self) -> None:
        self.status, self.date, self.chunks, self.size = 0, None, [], 0
        self.head = self.complete = self.limited = self.framed = self.keep = False
        self.headers = self.head_size = self.counted = 0

    def on_message_begin(self) -> None:
        if self.complete:  # bytes after the answer: parsing stops here (HttpParserError)
            raise _Trailing
        self._reset()  # the first answer, or the one after an interim 1xx

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers += 1
        self.head_size += len(name) + len(value) + 4  # "name: value\r\n"
        name = name.lower()
        if name == b"date":
            self.date = value.decode("latin-1")
        elif name == b"content-length" or (name == b"transfer-encoding" and value.lower()
                                          .rsplit(b",", 1)[-1].strip() == b"chunked"):
            # the body's end is announced, not the connection's close: only a final "chunked"
            # frames it (RFC 9112 6.3; llhttp and http.client read any other to the close)
            self.framed = True

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        # an interim answer: the real one follows; but not a 101 (llhttp stops at it as at an
        # upgrade, which this client never asks for): that is the answer, as for http.client
        self.head = self.status == 101 or not 100 <= self.status < 200

    def on_chunk_header(self) -> None:
        self.counted += 1  # for the framing's allowance: each chunk's size line

    def on_body(self, chunk: bytes) -> None:
        if self.status != 200 or self.limited:
            return
        self.size += len(chunk)
        if self.size > self.max_body:
            self.limited = True
            return
        self.chunks.append(chunk)

    def on_message_complete(self) -> None:
        self.complete = self.head
        # asked here: llhttp answers it only in this callback (HTTP/1.0, Connection: close)
        self.keep = self.parser.should_keep_alive()


def exchange(sock: socket.socket, request: bytes, deadline: float, timeout: float,
             max_body: int, written: Callable[[], None]) -> Result:
    """Write ``request`` and read its answer by ``deadline`` (``time.monotonic`` seconds; the
    attempt's ``timeout`` in seconds, for the messages): (status, Date or None, body, whether
    the connection may carry another request). The body is read for a 200 only (b"" otherwise,
    and the connection is not kept). ``written`` is called once the request is with the
    kernel, before the answer is awaited. Raises :class:`TransportError`."""
    try:
        settimeout_until(sock, deadline)
        sock.sendall(request)
    except TimeoutError:
        raise TransportError("Timeout", f"no answer within {timeout:g}s") from None
    except ConnectionError:  # reset, broken pipe: the server closed a kept-alive connection
        raise TransportError("ConnectionError", "connection lost before the answer") from None
    except OSError as exc:
        raise TransportError("ConnectionError", type(exc).__name__) from None
    written()
    answer = _Answer(max_body)
    try:
        return _read(sock, answer, deadline, timeout)
    finally:  # the parser holds the answer: no cycle left for the garbage collector
        del answer.parser


def _read(sock: socket.socket, answer: _Answer, deadline: float, timeout: float) -> Result:
    """Receive and parse until the answer is complete, refused or out of time."""
    fed = 0
    while True:
        try:
            settimeout_until(sock, deadline)
            data = sock.recv(_RECV)
        except TimeoutError:
            raise _late(answer, timeout) from None
        except OSError as exc:
            raise _lost(answer, type(exc).__name__) from None
        if not data:
            return _closed(answer)
        fed += len(data)
        try:
            answer.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # a 101: answered at its head by _verdict
            if not answer.head:
                raise _lost(answer, "HttpParserUpgrade") from None
        except httptools.HttpParserError as exc:
            if not answer.complete:
                raise _lost(answer, type(exc).__name__) from None
            answer.trailing = True  # bytes after the answer: the connection is not reused
        verdict = _verdict(answer, fed)
        if verdict is not None:
            return verdict


def _verdict(answer: _Answer, fed: int) -> Result | None:
    """The result once the answer says enough; None while more must be read."""
    if (answer.headers > MAX_HEADERS or answer.head_size > MAX_HEAD_BYTES
            or (not answer.head and fed > MAX_HEAD_BYTES)
            or (not answer.complete and fed - answer.size > _framing(answer))):
        raise TransportError("ConnectionError", "answer head too large")
    if answer.head and answer.status != 200:  # its body unread: the connection goes
        return answer.status, answer.date, b"", False
    if answer.limited:
        raise _too_large(answer)
    if not answer.complete:
        return None
    keep = answer.keep and not answer.trailing
    return 200, answer.date, b"".join(answer.chunks), keep


def _framing(answer: _Answer) -> int:
    """The bytes besides the body an answer may take: up to 64 KiB before its head completes,
    the read that completes it, 64 KiB of trailer and chunk extensions, and 24 bytes of each
    chunk's size line. Without it a trailer line without end would be held whole in memory
    (the parser reports a header only once it is complete) until the deadline."""
    return 2 * MAX_HEAD_BYTES + _RECV + 24 * answer.counted


def _closed(answer: _Answer) -> Result:
    """The server closed the connection: an answer without Content-Length or chunked encoding
    ends here; any other is cut off."""
    if not answer.head:
        raise TransportError("ConnectionError", "connection lost before the answer")
    if answer.status != 200:
        return answer.status, answer.date, b"", False
    if answer.framed:
        raise TransportError("ConnectionError", "body cut off", answer.date)
    if answer.limited:
        raise _too_large(answer)
    return 200, answer.date, b"".join(answer.chunks), False


def _late(answer: _Answer, timeout: float) -> TransportError:
    if not answer.head:
        return TransportError("Timeout", f"no answer within {timeout:g}s")
    return TransportError("Timeout", "body not complete within the timeout", answer.date)


def _too_large(answer: _Answer) -> TransportError:
    return TransportError("InvalidResponse", f"body larger than {answer.max_body} bytes",
                          answer.date)


def _lost(answer: _Answer, why: str) -> TransportError:
    return TransportError("ConnectionError", why, answer.date if answer.head else None)


def settimeout_until(sock: socket.socket, deadline: float) -> None:
    """Bound ``sock``'s next operation by what is left until ``deadline`` (``time.monotonic``
    seconds); :class:`TimeoutError` once it has passed."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)
