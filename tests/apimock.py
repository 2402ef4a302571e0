"""A stand-in for the Tencent API over real HTTP on 127.0.0.1, for tests that script its answers.

The client talks the standard library's http.client (api/transport.py), which the
``responses`` library cannot intercept, so tests answer over a socket instead: one keep-alive
server per test process (``SERVER``, started on first use on a free port, a daemon thread that
ends with the process), and an :class:`ApiMock` context that scripts its answers the way
``responses.RequestsMock`` did (``add``/``post``, ``add_callback``, ``replace``, ``calls``). A
request while no mock is active, or that no registered answer matches, gets its connection
closed without an answer (the client sees a connection error) and fails the mock at exit.
"""

from __future__ import annotations

import json as jsonlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Answer = tuple[int, dict[str, str], bytes | str]
"""status, headers, body; a callback returning None closes the connection unanswered."""


@dataclass
class Sent:
    """One request as the server read it: ``headers`` look up names case-insensitively."""

    method: str
    url: str
    headers: Message
    body: bytes


@dataclass
class Call:
    """A request and whether a registered answer matched it."""

    request: Sent
    matched: bool


class Calls(list[Call]):
    """The calls in arrival order; ``reset()`` forgets them (as responses' CallList)."""

    def reset(self) -> None:
        self.clear()


@dataclass
class _Route:
    method: str
    path: str
    answer: Callable[[Sent], Answer | None]
    fired: bool = field(default=False)


def _fixed(json: object = None, body: bytes | str = b"", status: int = 200,
           headers: dict[str, str] | None = None) -> Callable[[Sent], Answer]:
    payload: bytes | str = jsonlib.dumps(json) if json is not None else body
    extra = {"Content-Type": "application/json"} if json is not None else {}
    return lambda _request: (status, {**extra, **(headers or {})}, payload)


class ApiMock:
    """Scripted answers for ``SERVER`` while the context is open (one at a time per process).

    Several answers for one method and path are given in order, the last one repeating (as
    responses does). ``assert_all_requests_are_fired`` fails the exit when an answer was never
    used; an unmatched request always does.
    """

    def __init__(self, assert_all_requests_are_fired: bool = True) -> None:
        self.calls = Calls()
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._check_fired = assert_all_requests_are_fired

    @property
    def endpoint(self) -> str:
        """The server's base URL, ``http://127.0.0.1:<port>``."""
        return SERVER.endpoint

    def add(self, method: str, url: str, *, json: object = None, body: bytes | str = b"",
            status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Answer the next matching request with ``json`` (or ``body``), ``status``,
        ``headers``."""
        self._add(method, url, _fixed(json, body, status, headers))

    def post(self, url: str, **kwargs: Any) -> None:
        """``add("POST", url, ...)``."""
        self.add("POST", url, **kwargs)

    def add_callback(self, method: str, url: str,
                     callback: Callable[[Sent], Answer | None]) -> None:
        """Answer matching requests with ``callback(request) -> (status, headers, body)``, or
        close the connection unanswered when it returns None; it runs on the server's thread."""
        self._add(method, url, callback)

    def replace(self, method: str, url: str, **kwargs: Any) -> None:
        """Drop the answers registered for ``method`` and ``url``, then ``add`` this one."""
        path = urlsplit(url).path or "/"
        with self._lock:
            self._routes = [r for r in self._routes if (r.method, r.path) != (method, path)]
        self.add(method, url, **kwargs)

    def _add(self, method: str, url: str, answer: Callable[[Sent], Answer | None]) -> None:
        with self._lock:
            self._routes.append(_Route(method, urlsplit(url).path or "/", answer))

    def answer(self, request: Sent) -> Answer | None:
        """The answer for ``request`` (recorded in ``calls``); None to close the connection
        (nothing matches, or the callback says so)."""
        path = urlsplit(request.url).path or "/"
        with self._lock:
            routes = [r for r in self._routes if (r.method, r.path) == (request.method, path)]
            if routes and len(routes) > 1:
                self._routes.remove(routes[0])
            if routes:
                routes[0].fired = True
            self.calls.append(Call(request, bool(routes)))
        return routes[0].answer(request) if routes else None

    def __enter__(self) -> ApiMock:
        SERVER.activate(self)
        return self

    def __exit__(self, *exc: object) -> None:
        SERVER.activate(None)
        unmatched = [c.request for c in self.calls if not c.matched]
        assert not unmatched, f"requests without a registered answer: {unmatched}"
        if self._check_fired and exc[0] is None:
            unused = [(r.method, r.path) for r in self._routes if not r.fired]
            assert not unused, f"answers never used: {unused}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        sent = Sent(self.command, SERVER.endpoint + self.path, self.headers, body)
        mock = SERVER.active
        answer = mock.answer(sent) if mock is not None else None
        if answer is None:
            self.close_connection = True  # no answer: the client sees a connection error
            return
        status, headers, payload = answer
        data = payload.encode() if isinstance(payload, str) else payload
        self.log_request(status)
        self.send_response_only(status)  # no Date of its own: the tests' clocks are fake
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""


class _Server:
    """The process's one API server, started on first use."""

    def __init__(self) -> None:
        self.active: ApiMock | None = None
        self._http: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        with self._lock:
            if self._http is None:
                self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
                self._http.daemon_threads = True
                threading.Thread(target=self._http.serve_forever, daemon=True,
                                 name="api-mock").start()
            return f"http://127.0.0.1:{self._http.server_address[1]}"

    def activate(self, mock: ApiMock | None) -> None:
        assert mock is None or self.active is None, "one ApiMock at a time"
        self.active = mock


SERVER = _Server()
