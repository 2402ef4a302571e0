"""The client's HTTP transport: libcurl through pycurl, a handle per request in flight, connections
shared, and a report of when each request has been written.

Why libcurl (docs/performance.md, "Goal 4/5, fifth round"): a paced request costs about half the
client CPU of urllib3's (0.47-0.54 against 1.06-1.22 ms in the spike), which is what brings the
exporter's polling CPU toward half of the official SDK loop's. The cost is a C extension whose
wheel bundles its own libcurl and OpenSSL (docs/development.md, "Runtime dependencies").

The write report. The budget counts a request from the instant it leaves: the server stamps it
when it arrives, and a thread granted a token can still be held up before its bytes reach the
socket. ``on_written(callback)`` arms ``callback`` for the calling thread; libcurl's debug callback
(``VERBOSE`` + ``DEBUGFUNCTION``) reports each chunk of the body as ``CURLINFO_DATA_OUT`` after it
was sent, and the callback fires once the whole body is out, before the answer is awaited; also
through a proxy (libcurl reports the bytes it wrote into the tunnel). The debug callback also
sees the request head with its Authorization and X-TC-Token: it reads only the body's byte count
and keeps nothing (and ``VERBOSE`` without it would print the head to stderr, so both are set
together, the callback first).

One request per token. libcurl re-sends a request by itself, on a fresh connection, when a
reused connection turned out dead after the request was written and before any answer byte came
back (``Curl_retry_request``; ``CURLOPT_FORBID_RETRY_ON_REUSE``, documented for 8.16 to stop
that, is absent from the option table of the wheel's libcurl 8.23 and from pycurl). The server
may have counted the first copy, so the second would be a request without a token.
``CURLOPT_PREREQFUNCTION`` runs once before each request is sent on a connection, new or
reused: a second call within one ``perform`` aborts the transfer
(``CURLE_ABORTED_BY_CALLBACK``), reported as ``ConnectionError``; the client's own retry then
takes a token, as urllib3 without retries did. ``MAXAGE_CONN`` also retires connections idle for
longer than :data:`MAX_IDLE` seconds, below common server idle timeouts (60 to 75 s), so the race
with a server closing an idle connection is rare in the first place.

The environment is read once, at start, with requests' functions (requests stays for the webhook
relay and the metadata credentials), so a deployment's settings mean what they meant:
``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY`` and ``NO_PROXY`` give ``PROXY`` (or "" for none,
which also stops libcurl reading the variables itself), and ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE`` (else certifi's bundle) gives ``CAINFO``, always set: the wheel's compiled-in
CA path need not exist on the image. Peer and host name are verified.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import pycurl
import requests

log = logging.getLogger("trtc_exporter.client")
MAX_BODY_BYTES = 1 << 20  # an answer's body beyond this is refused (InvalidResponse)
MAX_IDLE = 30  # seconds a kept-alive connection may sit unused before it is closed, not reused
MAX_CONNECTIONS = 64  # idle connections kept for reuse: more than the poller's workers (30)
_armed = threading.local()
# libcurl error numbers by name, for messages that name the failure without echoing libcurl's
# text (which can carry the URL); the first name of each number in sorted order
_NAMES = {getattr(pycurl, n): n[2:] for n in sorted(dir(pycurl), reverse=True)
          if n.startswith("E_") and isinstance(getattr(pycurl, n), int)}
_UNREACHABLE = {pycurl.E_COULDNT_CONNECT, pycurl.E_COULDNT_RESOLVE_HOST,
                pycurl.E_COULDNT_RESOLVE_PROXY}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: ``status``, its ``Date`` header (None without one) and its ``body`` (read
    whole for a 200; left unread, b"", for any other status)."""

    status: int
    date: str | None
    body: bytes


class TransportError(Exception):
    """No HTTP answer: ``code`` is the ApiFailure code (``ConnectionError``, ``Timeout``,
    ``InvalidResponse``), the message says which failure; ``date`` is the answer's ``Date``
    header when its head had arrived (a body cut off or too large), else None."""

    def __init__(self, code: str, message: str, date: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.date = date


class Transport(Protocol):
    """What the client sends through (:class:`CurlTransport`; benches inject an in-process
    simulator)."""

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST ``body`` to ``url``; the connect and the whole answer within ``timeout``
        seconds. Raises :class:`TransportError`."""


@contextmanager
def on_written(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` (at most once, on this thread) when this thread's next request has been
    written to its socket; disarmed at exit whether or not it fired."""
    _armed.callback = callback
    try:
        yield
    finally:
        _armed.callback = None


def _written() -> None:
    callback = getattr(_armed, "callback", None)
    if callback is not None:
        _armed.callback = None
        callback()


def proxy_for(endpoint: str) -> str | None:
    """The proxy URL the environment names for ``endpoint``, or None: ``HTTPS_PROXY`` /
    ``HTTP_PROXY`` / ``ALL_PROXY`` and ``NO_PROXY``, either case, read by requests' own
    functions so the reading is what it was when requests sent the API calls."""
    return requests.utils.select_proxy(endpoint, requests.utils.get_environ_proxies(endpoint))


def ca_bundle() -> str:
    """The CA bundle path: ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` when set, else
    requests' default (certifi's bundle), so the trust is what it was."""
    return (os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            or requests.utils.DEFAULT_CA_BUNDLE_PATH)


class CurlTransport:
    """libcurl for one endpoint: ``pycurl.Curl`` handles lent out one per request in flight (a
    handle must not be used by two threads at once; moving between threads is allowed), all in
    one ``CurlShare`` of connections, DNS answers and TLS sessions, so the threads reuse a few
    kept-alive connections instead of one each. HTTP/1.1, no redirects, no retries; proxy and
    CA bundle read from the environment here, once.

    The handles are as many as requests were ever in flight at once (a handle keeps about 55 kB
    of buffers): the most recently returned one is lent first, so the others stay idle.
    """

    def __init__(self, endpoint: str) -> None:
        self.proxy = proxy_for(endpoint) or ""
        self.ca_bundle = ca_bundle()
        self._share = pycurl.CurlShare()  # pycurl supplies the share's locks for threads
        for data in (pycurl.LOCK_DATA_CONNECT, pycurl.LOCK_DATA_DNS,
                     pycurl.LOCK_DATA_SSL_SESSION):
            self._share.setopt(pycurl.SH_SHARE, data)
        self._idle: list[_Handle] = []  # pop and append are atomic: no lock needed

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """POST ``body`` to ``url`` through an idle handle; see :class:`Transport`."""
        try:
            handle = self._idle.pop()
        except IndexError:
            handle = _Handle(self.proxy, self.ca_bundle, self._share)
        try:
            return handle.post(url, body, headers, timeout)
        finally:
            self._idle.append(handle)

    @property
    def handles(self) -> int:
        """How many handles are idle (all of them, when no request is in flight)."""
        return len(self._idle)


class _Handle:
    """One ``pycurl.Curl``, lent to one request at a time, with that request's state. libcurl
    allows passing a handle between threads, never using it from two at once (libcurl-thread(3))."""

    def __init__(self, proxy: str, ca_bundle: str, share: pycurl.CurlShare) -> None:
        self.curl = curl = pycurl.Curl()
        self.chunks: list[bytes] = []
        self.lines: list[bytes] = []  # the answer's header lines, as libcurl hands them over
        self.size = 0  # body bytes received
        self.pending = 0  # body bytes not yet reported written
        self.requests = 0  # requests libcurl was about to send in this perform
        self.timeout_ms = 0
        self.url = ""
        curl.setopt(pycurl.SHARE, share)
        curl.setopt(pycurl.NOSIGNAL, 1)  # threads: no SIGALRM for timeouts
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.PROXY, proxy)  # "" = none, and the environment is not read again
        curl.setopt(pycurl.NOPROXY, "")  # NO_PROXY was applied by proxy_for
        curl.setopt(pycurl.CAINFO, ca_bundle)
        curl.setopt(pycurl.PROXY_CAINFO, ca_bundle)
        curl.unsetopt(pycurl.CAPATH)  # only the bundle is trusted, as with requests and urllib3
        curl.setopt(pycurl.SSL_VERIFYPEER, 1)
        curl.setopt(pycurl.SSL_VERIFYHOST, 2)
        curl.setopt(pycurl.MAXAGE_CONN, MAX_IDLE)
        curl.setopt(pycurl.MAXCONNECTS, MAX_CONNECTIONS)  # idle ones kept, in the share
        curl.setopt(pycurl.WRITEFUNCTION, self._write)
        curl.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        curl.setopt(pycurl.PREREQFUNCTION, self._prereq)
        curl.setopt(pycurl.DEBUGFUNCTION, self._debug)  # before VERBOSE: nothing to stderr
        curl.setopt(pycurl.VERBOSE, 1)  # DEBUGFUNCTION is only called in verbose mode

    def post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        curl = self.curl
        if url != self.url:
            curl.setopt(pycurl.URL, url)
            self.url = url
        timeout_ms = max(1, int(timeout * 1000))
        if timeout_ms != self.timeout_ms:
            curl.setopt(pycurl.TIMEOUT_MS, timeout_ms)
            curl.setopt(pycurl.CONNECTTIMEOUT_MS, timeout_ms)
            self.timeout_ms = timeout_ms
        # "Expect:" and "Accept:" drop libcurl's own headers of those names
        curl.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()]
                    + ["Expect:", "Accept:"])
        curl.setopt(pycurl.POSTFIELDS, body)
        self.chunks.clear()
        self.lines.clear()
        self.size, self.pending, self.requests = 0, len(body), 0
        try:
            curl.perform()
        except pycurl.error as exc:
            return self._failed(int(exc.args[0]), timeout)
        status, date = curl.getinfo(pycurl.RESPONSE_CODE), self._date()
        return Reply(status, date, b"".join(self.chunks) if status == 200 else b"")

    def _failed(self, errno: int, timeout: float) -> Reply:
        """The answer's status when its head came and was not a 200 (whatever became of its
        body); else raises the failure's :class:`TransportError`."""
        status, date = self.curl.getinfo(pycurl.RESPONSE_CODE), self._date()
        if status and status != 200:
            return Reply(status, date, b"")
        if errno in _UNREACHABLE:
            raise TransportError("ConnectionError", "could not connect")
        if errno == pycurl.E_OPERATION_TIMEDOUT:
            if status:
                raise TransportError("Timeout", "body not complete within the timeout", date)
            raise TransportError("Timeout", f"no answer within {timeout:g}s")
        if errno == pycurl.E_WRITE_ERROR and self.size > MAX_BODY_BYTES:
            raise TransportError("InvalidResponse", f"body larger than {MAX_BODY_BYTES} bytes",
                                 date)
        if errno == pycurl.E_ABORTED_BY_CALLBACK and self.requests > 1:
            log.debug("kept-alive connection lost after the request was written; libcurl's "
                      "re-send on a new connection stopped (it would have had no token)")
            raise TransportError("ConnectionError", "connection lost before the answer")
        raise TransportError("ConnectionError", _NAMES.get(errno, f"libcurl error {errno}"))

    def _date(self) -> str | None:
        """The last answer's Date header (a proxy's CONNECT answer comes first)."""
        date = None
        for line in self.lines:
            if line[:5] == b"HTTP/":
                date = None
            elif line[:5].lower() == b"date:":
                date = line[5:].strip().decode("latin-1")
        return date

    def _write(self, data: bytes) -> int | None:
        self.size += len(data)
        if self.size > MAX_BODY_BYTES:
            return 0  # anything but len(data) aborts the transfer: CURLE_WRITE_ERROR
        self.chunks.append(data)
        return None

    def _prereq(self, *_conn: object) -> int:
        # called before each request on a connection, new or reused: a second one in a perform
        # is libcurl re-sending on its own (see the module docstring)
        self.requests += 1
        return pycurl.PREREQFUNC_OK if self.requests == 1 else pycurl.PREREQFUNC_ABORT

    def _debug(self, kind: int, data: bytes) -> None:
        # libcurl reports the body's bytes (DATA_OUT) after they were sent; nothing is kept
        if kind == pycurl.INFOTYPE_DATA_OUT and self.pending > 0:
            self.pending -= len(data)
            if self.pending <= 0:
                _written()
