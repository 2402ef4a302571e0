"""One request and its answer on a socket: written in one piece and reported, the answer parsed
by httptools with http.client's limits, the connection kept only after a clean answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from trtc_exporter.api.exchange import (
    MAX_HEADERS,
    TransportError,
    exchange,
    request_bytes,
)

DATE = "Tue, 24 Nov 2026 10:02:00 GMT"
REQUEST = request_bytes("/", {"Host": "api.test", "X-TC-Action": "Describe"}, b"{}")


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair: the client's end and the server's end."""
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


def _ask(pair: tuple[socket.socket, socket.socket], answer: bytes, close: bool = False,
         max_body: int = 1 << 20) -> tuple[int, str | None, bytes, bool]:
    """Exchange REQUEST for ``answer`` (already waiting in the socket), the server's end closed
    after it when ``close``."""
    client, server = pair
    server.sendall(answer)
    if close:
        server.shutdown(socket.SHUT_WR)
    return exchange(client, REQUEST, time.monotonic() + 5, 5.0, max_body, lambda: None)


def _ok(body: bytes = b"{}", *head: str) -> bytes:
    lines = ["HTTP/1.1 200 OK", f"Date: {DATE}", f"Content-Length: {len(body)}", *head]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_the_request_is_one_piece_with_its_length_and_no_compression() -> None:
    """The request line, Accept-Encoding identity, the headers in order, Content-Length, body."""
    assert REQUEST == (b"POST / HTTP/1.1\r\nAccept-Encoding: identity\r\nHost: api.test\r\n"
                       b"X-TC-Action: Describe\r\nContent-Length: 2\r\n\r\n{}")


@pytest.mark.parametrize("value", ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b"])
def test_a_header_value_that_could_add_a_header_is_refused_without_showing_it(value: str
                                                                              ) -> None:
    """CR, LF or NUL in a value raises ValueError naming the header, never the value."""
    with pytest.raises(ValueError) as caught:
        request_bytes("/", {"X-TC-Token": value}, b"")
    assert "X-TC-Token" in str(caught.value) and value not in str(caught.value)


@pytest.mark.parametrize("name", ["X-Evil:", "X Evil", "X-Evil\r\nHost", "X-\0", "X-\u4e2d"])
def test_a_header_name_that_is_not_a_token_is_refused_naming_it(name: str) -> None:
    """A colon, space, CR, LF, NUL or a character beyond Latin-1 in a name is refused too,
    and only that header is named (the others are fine)."""
    with pytest.raises(ValueError, match="Invalid header") as caught:
        request_bytes("/", {"Host": "h", name: "v", "X-TC-Token": "ok"}, b"")
    assert repr(name) in str(caught.value)


def test_a_target_beyond_latin_1_is_refused_without_carrying_it() -> None:
    with pytest.raises(ValueError, match="'target'") as caught:
        request_bytes("/\u4e2d", {"Host": "h", "X-TC-Token": "secret"}, b"")
    assert "secret" not in repr(vars(caught.value)) + repr(caught.value.args)


def test_a_header_value_beyond_latin_1_is_refused_without_carrying_it() -> None:
    """A value beyond Latin-1: ValueError naming the header; neither its message nor its
    attributes nor its context hold the value (a UnicodeEncodeError's ``object`` would)."""
    with pytest.raises(ValueError) as caught:
        request_bytes("/", {"Host": "h", "X-TC-Token": "secret\u4e2dtoken"}, b"")
    failure = caught.value
    assert type(failure) is ValueError and "X-TC-Token" in str(failure)
    assert "secret" not in repr(vars(failure)) + repr(failure.args) + "\u4e2d"
    assert failure.__context__ is None or failure.__suppress_context__


def test_the_write_is_reported_once_the_server_can_read_it(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """``written`` runs after the whole request is with the kernel, before the answer."""
    client, server = pair
    seen: list[bytes] = []

    def written() -> None:
        seen.append(server.recv(65536))
        server.sendall(_ok())

    assert exchange(client, REQUEST, time.monotonic() + 5, 5.0, 1 << 20, written) == (
        200, DATE, b"{}", True)
    assert seen == [REQUEST]


def test_a_chunked_answer_is_joined_and_the_connection_kept(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Chunked encoding (with a trailer) gives the whole body."""
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\n{\"a\r\n4\r\n\": 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n")
    assert _ask(pair, answer) == (200, None, b'{"a": 1}', True)


@pytest.mark.parametrize("answer", [
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    _ok() + b"HTTP/1.1 200 OK\r\n",  # bytes nobody asked for after the answer
])
def test_a_connection_the_answer_does_not_leave_clean_is_not_kept(
        pair: tuple[socket.socket, socket.socket], answer: bytes) -> None:
    """HTTP/1.0, Connection: close, or bytes after the answer: the body, but not kept."""
    assert _ask(pair, answer)[2:] == (b"{}", False)


def test_interim_answers_are_skipped(pair: tuple[socket.socket, socket.socket]) -> None:
    """100 Continue and 103 Early Hints before the answer are passed over."""
    answer = (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
              + _ok(b'{"x": 1}'))
    assert _ask(pair, answer) == (200, DATE, b'{"x": 1}', True)


def test_another_status_is_returned_at_its_head_and_the_connection_dropped(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A 503's body is not awaited: status and Date at once, the connection not kept."""
    answer = f"HTTP/1.1 503 Busy\r\nDate: {DATE}\r\nContent-Length: 100\r\n\r\n".encode()
    assert _ask(pair, answer) == (503, DATE, b"", False)


def test_an_answer_without_length_ends_when_the_server_closes(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Neither Content-Length nor chunked: the body runs to the close, not kept."""
    assert _ask(pair, b"HTTP/1.1 200 OK\r\n\r\n{}", close=True) == (200, None, b"{}", False)


def test_a_body_cut_off_is_a_connection_error_carrying_the_date(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """The server closes before Content-Length bytes came."""
    with pytest.raises(TransportError) as caught:
        _ask(pair, _ok(b"{}")[:-1], close=True)
    assert (caught.value.code, str(caught.value), caught.value.date) == (
        "ConnectionError", "body cut off", DATE)


def test_a_close_before_any_answer_is_a_lost_connection(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """Closed unanswered (a kept-alive connection the server dropped): ConnectionError."""
    with pytest.raises(TransportError) as caught:
        _ask(pair, b"", close=True)
    assert (caught.value.code, str(caught.value), caught.value.date) == (
        "ConnectionError", "connection lost before the answer", None)


def test_a_body_over_the_cap_is_an_invalid_response(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """More than ``max_body`` bytes: InvalidResponse with the Date, whether announced or not."""
    for answer, close in ((_ok(b"x" * 11), False), (b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 11, True)):
        client, server = socket.socketpair()
        with pytest.raises(TransportError) as caught:
            _ask((client, server), answer, close=close, max_body=10)
        assert caught.value.code == "InvalidResponse"
        client.close()
        server.close()


def _head(*lines: str) -> bytes:
    return ("\r\n".join(["HTTP/1.1 200 OK", *lines]) + "\r\n\r\n").encode()


@pytest.mark.parametrize("answer", [
    _head(*(f"X-{i}: v" for i in range(MAX_HEADERS + 1))),
    _head(*(f"X-{i}: " + "v" * 999 for i in range(66))),
    b"HTTP/1.1 200 OK\r\nX-Long: " + b"v" * 70_000,  # no end in sight
    b"HTTP/1.1 100 Continue\r\n\r\n" * 3000,  # interim answers without end
], ids=["101 lines", "66 KB head", "endless line", "endless interim answers"])
def test_an_answer_head_beyond_http_clients_limits_is_refused(
        pair: tuple[socket.socket, socket.socket], answer: bytes) -> None:
    """More than 100 header lines, a head over 64 KiB, or 64 KiB without a head complete:
    ConnectionError."""
    with pytest.raises(TransportError) as caught:
        _ask(pair, answer)
    assert (caught.value.code, str(caught.value)) == ("ConnectionError", "answer head too large")


def test_a_malformed_answer_is_a_connection_error(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A status line that is not HTTP: ConnectionError named by the parser's error."""
    with pytest.raises(TransportError) as caught:
        _ask(pair, b"SSH-2.0-OpenSSH\r\n\r\n")
    assert caught.value.code == "ConnectionError" and caught.value.date is None


def test_an_attempt_past_its_deadline_sends_nothing(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A deadline already passed: Timeout before the write, nothing reported or sent."""
    client, server = pair
    reported: list[bool] = []
    with pytest.raises(TransportError) as caught:
        exchange(client, REQUEST, time.monotonic() - 1, 5.0, 1 << 20,
                 lambda: reported.append(True))
    assert (caught.value.code, str(caught.value)) == ("Timeout", "no answer within 5s")
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(1)
    assert reported == []


def test_a_switch_of_protocols_nobody_asked_for_is_returned_as_its_status(
        pair: tuple[socket.socket, socket.socket]) -> None:
    """A 101 (llhttp stops there as at an upgrade) is status 101, not kept, not a raw parser
    exception."""
    answer = (f"HTTP/1.1 101 Switching Protocols\r\nDate: {DATE}\r\nUpgrade: x\r\n"
              "Connection: upgrade\r\n\r\n").encode() + _ok()
    assert _ask(pair, answer) == (101, DATE, b"", False)


def _endless(client: socket.socket, server: socket.socket, start: bytes) -> TransportError:
    """Exchange REQUEST while the server sends ``start`` then 4 MiB of 'a' and closes."""

    def send() -> None:
        try:
            server.sendall(start)
            for _ in range(64):
                server.sendall(b"a" * 65536)
            server.shutdown(socket.SHUT_WR)
        except OSError:  # the client gave up and closed its end
            pass

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        with pytest.raises(TransportError) as caught:
            exchange(client, REQUEST, time.monotonic() + 5, 5.0, 1 << 20, lambda: None)
    finally:
        client.close()
        sender.join()
    return caught.value


@pytest.mark.parametrize("start", [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nX-Trailer: ",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=",
], ids=["endless trailer", "endless chunk extension"])
def test_an_endless_trailer_or_chunk_line_is_refused_as_a_head_is(
        pair: tuple[socket.socket, socket.socket], start: bytes) -> None:
    """Framing beyond the head's 64 KiB (a trailer line without end, which the parser would
    hold whole in memory until the deadline) is refused as a head too large."""
    client, server = pair
    failure = _endless(client, server, start)
    assert (failure.code, str(failure)) == ("ConnectionError", "answer head too large")


@pytest.mark.parametrize("coding", ["chunked, gzip", "xchunked"])
def test_a_transfer_coding_not_ending_in_chunked_runs_to_the_close(
        pair: tuple[socket.socket, socket.socket], coding: str) -> None:
    """As http.client and the parser read it: only a final ``chunked`` frames the body; any
    other coding's body runs to the close (not "cut off")."""
    answer = f"HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\n{{}}".encode()
    assert _ask(pair, answer, close=True) == (200, None, b"{}", False)


def test_a_body_in_many_small_chunks_is_within_the_framing_allowance() -> None:
    """64 KiB in one-byte chunks, each with a short extension: framing well beyond the head's
    64 KiB, yet every byte of it belongs to a chunk, so the answer is read."""
    client, server = socket.socketpair()
    body = b"x" * 65536
    answer = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
              + b"1;e=1\r\nx\r\n" * len(body) + b"0\r\n\r\n")
    sender = threading.Thread(target=server.sendall, args=(answer,), daemon=True)
    sender.start()
    try:
        assert exchange(client, REQUEST, time.monotonic() + 5, 5.0, 1 << 20,
                        lambda: None) == (200, None, body, True)
    finally:
        sender.join()
        client.close()
        server.close()


def test_an_exchange_leaves_no_garbage_cycle(pair: tuple[socket.socket, socket.socket]) -> None:
    """The parser and its callbacks' object are freed when the exchange ends, not left for the
    garbage collector (at 20 requests/s that would be steady collector work)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        for _ in range(50):
            assert _ask(pair, _ok())[0] == 200
            pair[1].recv(65536)
        assert gc.collect() == 0
    finally:
        gc.enable()
