"""The client's HTTP transport: one urllib3 pool manager whose connections say when a request is
written.

The budget counts a request from the instant it leaves: the server stamps it when it arrives. A
thread granted a token can still be held up (a busy CPU, another thread holding the GIL) before
its bytes reach the socket, so the limiter must not count the next window from the grant but from
the write. ``on_written(callback)`` arms ``callback`` for the calling thread; the connection calls
it once the request line, headers and body have been handed to the kernel (urllib3's
``HTTPConnection.request`` returns after ``sendall``), before the answer is awaited. Through a
proxy the tunnel's or the proxy's connection may not be ours: the caller then reports the write
itself once the answer is in, which is later and so errs on the safe side.

urllib3 directly, not ``requests`` (docs/performance.md, "Goal 4"): ``requests`` per call builds
and merges a session's settings, hooks and cookies around the same urllib3 pool, about half of a
request's client CPU. The environment is read once, at start: ``HTTPS_PROXY``/``HTTP_PROXY``/
``ALL_PROXY`` and ``NO_PROXY``, and the CA bundle from ``REQUESTS_CA_BUNDLE`` or
``CURL_CA_BUNDLE``, both read with requests' functions (requests stays for the webhook relay
and the metadata credentials), so a deployment's settings apply as before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

_armed = threading.local()
# what ``retries=False`` becomes inside urllib3 (``Retry.from_int``), built once instead of per call
_NO_RETRIES = Retry(False, redirect=False)
POOL_MAXSIZE = 64  # connections kept per host: more than the poller's workers


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


_POOLS = {"http": _Pool, "https": _TLSPool}


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


def pool_manager(endpoint: str) -> urllib3.PoolManager:
    """One pooled manager (keep-alive, no retries, no redirects) whose own connections report
    their writes; through the environment's proxy when one applies to ``endpoint``."""
    kwargs: dict[str, Any] = {"maxsize": POOL_MAXSIZE, "retries": False, "block": False,
                              "ca_certs": ca_bundle()}
    proxy = proxy_for(endpoint)
    manager: urllib3.PoolManager
    if proxy:
        manager = urllib3.ProxyManager(proxy, num_pools=4, **kwargs)
    else:
        manager = urllib3.PoolManager(num_pools=4, **kwargs)
    manager.pool_classes_by_scheme = _POOLS
    return manager


def post(manager: urllib3.PoolManager, url: str, body: bytes, headers: dict[str, str],
         timeout: float) -> urllib3.BaseHTTPResponse:
    """POST ``body`` to ``url``, the answer not yet read (``preload_content=False``: the caller
    reads it with a size cap and releases it). ``timeout`` (seconds) bounds the connect and
    each socket read. Raises urllib3's ``HTTPError`` subclasses (``TimeoutError``,
    ``ProtocolError``, ``NewConnectionError``, ``ProxyError``, ``SSLError``)."""
    return manager.urlopen("POST", url, body=body, headers=headers, redirect=False,
                           retries=_NO_RETRIES, timeout=timeout, preload_content=False,
                           assert_same_host=False)
