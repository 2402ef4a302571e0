"""The client's HTTP transport: one pooled ``requests`` session that says when a request is written.

The budget counts a request from the instant it leaves: the server stamps it when it arrives. A
thread granted a token can still be held up (a busy CPU, another thread holding the GIL) before
its bytes reach the socket, so the limiter must not count the next window from the grant but from
the write. ``on_written(callback)`` arms ``callback`` for the calling thread; the connection calls
it once the request line, headers and body have been handed to the kernel (urllib3's
``HTTPConnection.request`` returns after ``sendall``), before the answer is awaited. Through a
proxy, or with a session given by the caller (tests), the callback does not fire: the caller
reports the write itself once the answer is in, which is later and so errs on the safe side.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_armed = threading.local()


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


class _Connection(HTTPConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _written()


class _TLSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        super().request(*args, **kwargs)
        _written()


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Adapter(requests.adapters.HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def post(session: requests.Session, url: str, body: bytes, headers: dict[str, str],
         timeout: float) -> requests.Response:
    """POST ``body`` to ``url`` through ``session``'s adapter, streamed (the caller reads and
    closes the answer); redirects are not followed, as no API answer redirects.

    The request is built here instead of by ``Session.request``, which per call merges the
    session's settings, cookies and environment and prepares (re-parses) the URL and headers:
    about a third of a request's client CPU (docs/performance.md). Our URL is fixed and checked
    at start-up, our headers are ours, and the session's proxies and CA bundle are passed as
    they were read once in :func:`pooled_session`.
    """
    request = requests.PreparedRequest()
    request.method, request.url, request.body = "POST", url, body
    merged: dict[str, str] = {k: str(v) for k, v in session.headers.items()}
    request.headers = CaseInsensitiveDict({**merged, **headers})
    request.headers["Content-Length"] = str(len(body))
    request.hooks = {"response": []}
    verify = True if session.verify is None else session.verify
    return session.get_adapter(url).send(request, stream=True, timeout=timeout, verify=verify,
                                         cert=session.cert, proxies=session.proxies)


def pooled_session(endpoint: str) -> requests.Session:
    """One pooled session whose connections report their writes (see the module docstring).
    Proxy and CA settings are read from the environment once here: with trust_env, requests
    would re-scan the environment (and look for .netrc) per request."""
    session = requests.Session()
    adapter = _Adapter(pool_connections=4, pool_maxsize=64, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.proxies = requests.utils.get_environ_proxies(endpoint)
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session
