"""HTTP endpoints: /, /metrics, /-/healthy, /-/ready, /-/reload, /probe, /api/v1/targets.

Handlers only read the poller's snapshot (and /-/reload re-reads the config); nothing here calls
the TRTC API. Any handler error becomes a 500 with a short text for that request only, except
/metrics, which falls back to the exporter's own health series and still answers 200.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.body import encoder_for
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.polling.state import TargetState
from trtc_exporter.web import registration
from trtc_exporter.web.landing import render_landing
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.rows import target_rows
from trtc_exporter.web.toolkit.server import SecureHandlerMixin

log = logging.getLogger("trtc_exporter.web")  # caller= stays as before
TARGET_PREFIX = "/api/v1/targets/"


class Routes:
    """What the handler needs from the exporter, plus the telemetry path flag."""

    def __init__(self, exporter: ExporterProtocol, telemetry_path: str = "/metrics") -> None:
        self.exporter = exporter
        self.telemetry_path = telemetry_path

    def table(self) -> dict[tuple[str, str], Callable[[ExporterHandler], None]]:
        """(method, path) → handler method; the telemetry path is the flag's."""
        return {
            ("GET", "/"): ExporterHandler.landing,
            ("GET", self.telemetry_path): ExporterHandler.metrics,
            ("GET", "/-/healthy"): ExporterHandler.healthy,
            ("GET", "/-/ready"): ExporterHandler.ready,
            ("POST", "/-/reload"): ExporterHandler.reload,
            ("PUT", "/-/reload"): ExporterHandler.reload,
            ("GET", "/probe"): ExporterHandler.probe,
            ("GET", "/api/v1/targets"): ExporterHandler.targets,
            ("POST", "/api/v1/targets"): registration.post_targets,
        }


class ExporterHandler(SecureHandlerMixin):
    """One HTTP request: dispatch by method and path, answer from the exporter's protocol."""

    routes: Routes
    server_version = "trtc-transcription-exporter"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that stops sending mid-request frees its thread after this

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def check_auth(self) -> bool:
        """Registration writes with a bearer token configured are authenticated by the token
        (web_targets), since one request carries one Authorization header; the rest by the
        web config's basic auth."""
        path = urlsplit(self.path).path
        writes = (self.command == "POST" and path == "/api/v1/targets") or (
            self.command == "DELETE" and path.startswith(TARGET_PREFIX))
        if writes and self.exporter.bearer_token() is not None:
            return True
        return super().check_auth()

    def _dispatch(self, method: str) -> None:
        if self.headers.get("Content-Length", "") not in ("", "0") or \
                "Transfer-Encoding" in self.headers:
            # a body we might not read must not be parsed as the next request on this connection
            self.close_connection = True
        if not self.check_auth():
            return  # 401 already sent
        path = urlsplit(self.path).path
        if method == "DELETE" and path.startswith(TARGET_PREFIX) and len(path) > len(TARGET_PREFIX):
            self._guarded(lambda: registration.delete_target(self, path[len(TARGET_PREFIX):]))
            return
        table = self.routes.table()
        handler = table.get((method, path))
        if handler is None:
            allowed = any(p == path for _, p in table)
            status = HTTPStatus.METHOD_NOT_ALLOWED if allowed else HTTPStatus.NOT_FOUND
            self.send_text(status, f"{status.phrase}\n")
            return
        self._guarded(lambda: handler(self))

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:
            log.exception("error serving %s %s", self.command, urlsplit(self.path).path)
            self.send_text(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error\n")

    # -- responses --------------------------------------------------------------------------
    def send_body(self, status: int, body: bytes | list[bytes], content_type: str,
                  headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if isinstance(body, bytes)
                                               else sum(map(len, body))))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")  # keep-alive clients must know
        self.end_headers()
        if self.command != "HEAD":
            for piece in [body] if isinstance(body, bytes) else body:
                self.wfile.write(piece)

    def send_text(self, status: int, text: str) -> None:
        self.send_body(status, text.encode(), "text/plain; charset=utf-8")

    def send_json(self, status: int, document: Any) -> None:
        body = json.dumps(document, indent=1, sort_keys=True).encode()
        self.send_body(status, body, "application/json")

    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("http %s - %s", self.address_string(), format % args)

    # -- endpoints --------------------------------------------------------------------------
    @property
    def exporter(self) -> ExporterProtocol:
        return self.routes.exporter

    def metrics(self) -> None:
        pieces, content_type = self.exporter.exposition.render(self.headers.get("Accept", ""))
        self.send_pieces(pieces, content_type)

    def send_registry(self, registry: CollectorRegistry) -> None:
        encoder, content_type = encoder_for(self.headers.get("Accept", ""))
        self.send_pieces([encoder(registry)], content_type)

    def send_pieces(self, pieces: list[bytes], content_type: str) -> None:
        """An exposition body given in pieces: gzipped whole when asked, else written in turn
        (no copy of a body of many megabytes)."""
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(b"".join(pieces), compresslevel=1)
            self.send_body(HTTPStatus.OK, body, content_type, {"Content-Encoding": "gzip"})
            return
        self.send_body(HTTPStatus.OK, pieces, content_type)

    def landing(self) -> None:
        html = render_landing(self.exporter, self.routes.telemetry_path)
        self.send_body(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8")

    def healthy(self) -> None:
        if self.exporter.healthy():
            self.send_text(HTTPStatus.OK, "Healthy.\n")
        else:
            self.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "Poller has made no progress.\n")

    def ready(self) -> None:
        if self.exporter.ready():
            self.send_text(HTTPStatus.OK, "Ready.\n")
        else:
            self.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "First poll cycle not done yet.\n")

    def reload(self) -> None:
        if not self.exporter.runtime.config_path:
            self.send_text(HTTPStatus.BAD_REQUEST, "no --config.file to reload (demo mode)\n")
            return
        ok, message = self.exporter.reload()
        status = HTTPStatus.OK if ok else HTTPStatus.INTERNAL_SERVER_ERROR
        self.send_text(status, message + "\n")

    def targets(self) -> None:
        rows = target_rows(self.exporter.target_facts(), self.exporter.now())
        self.send_json(HTTPStatus.OK, {"status": "success", "data": rows})

    def probe(self) -> None:
        params = self.query()
        match = probe_matcher(params)
        if match is None:
            self.send_text(HTTPStatus.BAD_REQUEST,
                           "probe needs task_id, or sdk_app_id and session_id\n")
            return
        exporter = self.exporter
        found = [s for s in exporter.states() if match(s)]
        registration.register_probed(self, params, found)
        # only the probed target's task families: per-app totals live on /metrics alone, so a
        # probe job scraped beside the main job cannot double them
        registry = CollectorRegistry(auto_describe=True)
        registry.register(TaskCollector(exporter.states, exporter.now, only=match))
        registry.register(_ProbeSuccess(found, exporter.now()))
        self.send_registry(registry)


def probe_matcher(params: dict[str, str]) -> Callable[[TargetState], bool] | None:
    """A predicate selecting the probed target's state from the query parameters."""
    task_id, app, session = (params.get("task_id", ""), params.get("sdk_app_id", ""),
                             params.get("session_id", ""))
    if not task_id and not (app and session):
        return None
    api, region = params.get("api"), params.get("region")

    def match(state: TargetState) -> bool:
        key = state.target.identity_labels
        if (api and key["api"] != api) or (region and key["region"] != region):
            return False
        if task_id:
            return key["task_id"] == task_id and (not app or key["sdk_app_id"] == app)
        return key["sdk_app_id"] == app and key["session_id"] == session

    return match


class _ProbeSuccess:
    def __init__(self, found: list[TargetState], now: WallSeconds) -> None:
        self._ok = any(s.poll_success and s.shown_status(now) != "Unknown" for s in found)

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily("probe_success",
                                   "1 if the probed target is known and its last poll succeeded.")
        family.add_metric([], 1.0 if self._ok else 0.0)
        return [family]


def handler_class(routes: Routes) -> type[ExporterHandler]:
    """A handler class bound to these routes, for the HTTP server."""
    return type("BoundExporterHandler", (ExporterHandler,), {"routes": routes})

