"""Request framing per RFC 9112: ambiguous requests are refused before anything runs."""

from __future__ import annotations

import io

import pytest

from trtc_exporter.web.toolkit.framing import (
    Framing,
    FramingError,
    check_head,
    head_end,
    printable,
    read_chunked,
)


def head(*lines: str, version: str = "HTTP/1.1") -> bytes:
    return ("\r\n".join([f"POST /api/v1/targets {version}", *lines]) + "\r\n\r\n").encode()


@pytest.mark.parametrize(("lines", "framing"), [
    ((), Framing()), (("Content-Length: 17",), Framing(length=17)),
    (("Content-Length: 5", "content-length: 5"), Framing(length=5)),  # identical: one value
    (("Content-Length: 5, 5",), Framing(length=5)),
    (("Transfer-Encoding: chunked",), Framing(chunked=True)),
    (("transfer-encoding: Chunked",), Framing(chunked=True)),
])
def test_accepted_framing(lines: tuple[str, ...], framing: Framing) -> None:
    """Unambiguous framing gives the body length or chunked."""
    assert check_head(head(*lines)) == framing


@pytest.mark.parametrize(("lines", "status"), [
    (("Content-Length: 17", "Content-Length: 5"), 400),  # the duplicate that was accepted
    (("Content-Length: 17, 5",), 400), (("Content-Length: -1",), 400),
    (("Content-Length: 0x10",), 400), (("Content-Length:",), 400),
    (("Content-Length: 5", "Transfer-Encoding: chunked"), 400),
    (("Transfer-Encoding: gzip, chunked",), 501), (("Transfer-Encoding: chunked, gzip",), 501),
    (("Transfer-Encoding: identity",), 501), (("Transfer-Encoding:",), 501),
    (("X-A: 1", " folded"), 400), (("X-A: 1", "\tfolded"), 400),  # obs-fold
    (("Content-Length : 5",), 400), (("no colon here",), 400),
])
def test_refused_framing(lines: tuple[str, ...], status: int) -> None:
    """Conflicting lengths, CL with TE, unknown codings, obs-fold and bad names are refused."""
    with pytest.raises(FramingError) as caught:
        check_head(head(*lines))
    assert caught.value.status == status


def test_transfer_encoding_in_http_1_0_is_refused() -> None:
    """HTTP/1.0 has no chunked coding: such a request is faulty framing."""
    with pytest.raises(FramingError):
        check_head(head("Transfer-Encoding: chunked", version="HTTP/1.0"))


@pytest.mark.parametrize("line", ["GET /\x1b[31m HTTP/1.1", "GET / HTTP/1.1 extra", "GARBAGE"])
def test_malformed_request_lines_are_refused(line: str) -> None:
    """Control characters or a wrong number of parts in the request line give 400."""
    with pytest.raises(FramingError):
        check_head((line + "\r\n\r\n").encode())


def test_head_end_needs_the_empty_line() -> None:
    """A head is complete only with its empty line (CRLF or bare LF)."""
    assert head_end(b"GET / HTTP/1.1\r\nHost: x\r\n") == -1
    assert head_end(b"GET / HTTP/1.1\r\n\r\nrest") == 18
    assert head_end(b"GET / HTTP/1.1\n\nrest") == 16


def test_printable_escapes_control_characters() -> None:
    """Control characters (C0, DEL, C1) become \\xNN; the rest stays."""
    assert printable("a\x1b[2J\r\n\x7f\x85é") == "a\\x1b[2J\\x0d\\x0a\\x7f\\x85é"


@pytest.mark.parametrize(("body", "decoded"), [
    (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
    (b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n", b"hello world"),
    (b"0\r\n\r\n", b""),
])
def test_read_chunked(body: bytes, decoded: bytes) -> None:
    """Chunk extensions and trailers are read and ignored."""
    assert read_chunked(io.BytesIO(body), 100) == decoded


@pytest.mark.parametrize(("body", "status"), [
    (b"zz\r\nhello\r\n0\r\n\r\n", 400), (b"5\r\nhelloXX0\r\n\r\n", 400),
    (b"5\r\nhel", 400), (b"", 400), (b"10\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n", 413),
    (b"5\r\nhello\r\n0\r\n", 400),
])
def test_bad_chunked_bodies(body: bytes, status: int) -> None:
    """A bad size line, a size mismatch, a cut body or too many bytes are refused."""
    with pytest.raises(FramingError) as caught:
        read_chunked(io.BytesIO(body), 10)
    assert caught.value.status == status
