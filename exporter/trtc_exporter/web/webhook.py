"""The callback listener: ``POST /webhook/trtc`` on its own server (``--webhook.listen-address``).

It faces the internet while ``/metrics`` must not, so it serves nothing else: every other path
and method is a 404. TLS (and, if configured, basic auth and headers) come from
``--webhook.config.file`` in the same web-config format as ``--web.config.file``.

TRTC waits 5 s for the answer (docs 66149 and 80094, "Timeout Retry"), so each request has a
budget of :data:`REQUEST_BUDGET` seconds to arrive whole; a ``Content-Length`` over the 64 KiB cap
is refused before a byte of the body is read, and a body that trickles in slower than the
budget is dropped with a 408. The judging, relaying and applying happen in the endpoint
(:class:`trtc_exporter.webhook.hub.WebhookHub`), which answers at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

from trtc_exporter.web.toolkit.server import ExporterHTTPServer, SecureHandlerMixin
from trtc_exporter.web.toolkit.webconfig import WebConfigStore
from trtc_exporter.webhook.events import MAX_BODY_BYTES
from trtc_exporter.webhook.receiver import Outcome

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhook/trtc"
REQUEST_BUDGET = 5.0
"""Seconds from the request line to the whole body: TRTC's own answer timeout."""


class WebhookEndpoint(Protocol):
    """What the listener needs: judge a request, or count a refusal made before the body."""

    def handle(self, headers: Mapping[str, str], body: bytes) -> Outcome:
        """Verify, dedupe and apply one callback; the outcome says what to answer."""

    def refuse(self, status: int, result: str, message: str) -> Outcome:
        """Count a request refused before its body was read (wrong path, method or framing)."""


class WebhookHandler(SecureHandlerMixin):
    """One request to the callback listener."""

    endpoint: WebhookEndpoint
    server_version = "trtc-transcription-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = REQUEST_BUDGET  # per socket read; the body also has an overall deadline

    def do_POST(self) -> None:
        if not self.check_auth():
            return
        if self.path.split("?", 1)[0] != WEBHOOK_PATH:
            self._not_found()
            return
        length = self._content_length()
        if length is None:
            return
        body = self._read_body(length)
        if body is None:
            return
        self._answer(self.endpoint.handle(dict(self.headers.items()), body))

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or raw is None:
            self._refuse(411, "bad_request", "Content-Length required")
            return None
        if not (raw.isascii() and raw.strip().isdigit()):
            self._refuse(400, "bad_request", "Content-Length is not a number")
            return None
        length = int(raw)
        if length > MAX_BODY_BYTES:  # refused before reading: a sender cannot make us buffer
            self._refuse(413, "too_large", f"body larger than {MAX_BODY_BYTES} bytes")
            return None
        return length

    def _read_body(self, length: int) -> bytes | None:
        deadline = time.monotonic() + REQUEST_BUDGET
        chunks, got = [], 0
        try:
            while got < length:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.connection.settimeout(remaining)
                chunk = self.rfile.read1(length - got)
                if not chunk:
                    self.close_connection = True
                    return None
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError:
            self._refuse(408, "timeout", f"the body did not arrive within {REQUEST_BUDGET:.0f}s")
            return None
        finally:
            self.connection.settimeout(self.timeout)
        return b"".join(chunks)

    def _refuse(self, status: int, result: str, message: str) -> None:
        self.close_connection = True  # an unread body must not become the next request
        self._answer(self.endpoint.refuse(status, result, message))

    def _answer(self, outcome: Outcome) -> None:
        self.send_body(outcome.status, outcome.body, "application/json")

    def _not_found(self) -> None:
        if not self.check_auth():
            return
        self.close_connection = True  # send_body then says Connection: close
        self.send_body(404, b"404 page not found\n", "text/plain; charset=utf-8")

    do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _not_found

    def log_message(self, format: str, *args: object) -> None:
        """Access lines at debug level through logging (``BaseHTTPRequestHandler`` writes to
        stderr)."""
        log.debug("webhook %s %s", self.address_string(), format % args)


def make_webhook_server(address: str, endpoint: WebhookEndpoint,
                        store: WebConfigStore | None = None) -> ExporterHTTPServer:
    """The listener bound to ``address`` (``host:port``); ValueError for a bad address,
    OSError when it cannot bind."""
    handler = type("BoundWebhookHandler", (WebhookHandler,), {"endpoint": endpoint})
    return ExporterHTTPServer(address, handler, store)
