"""HTTP endpoints: /, /metrics, /-/healthy, /-/ready, /-/reload, /probe, /api/v1/targets.

Handlers only read the poller's snapshot (and /-/reload re-reads the config); nothing here calls
the TRTC API. Any handler error becomes a 500 JSON error for that request only, except
/metrics, which falls back to the exporter's own health series and still answers 200.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from trtc_exporter.allocator import PROCESS, Allocator
from trtc_exporter.clock import WallSeconds
from trtc_exporter.errors import show
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import MAX_ID_CHARS, MAX_SDK_APP_ID, id_problem
from trtc_exporter.web import registration
from trtc_exporter.web.landing import render_landing
from trtc_exporter.web.negotiation import Encoder, accepts_gzip, choose_format
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.rows import target_rows
from trtc_exporter.web.sharing import Shared
from trtc_exporter.web.static import CSS, JS, LANDING_CSP
from trtc_exporter.web.toolkit.framing import FramingError
from trtc_exporter.web.toolkit.server import SecureHandlerMixin
from trtc_exporter.web.view import parse_view

log = logging.getLogger("trtc_exporter.web")  # caller= stays as before
PROBE_PARAMS = ("task_id", "session_id", "sdk_app_id", "api", "region")
# versioned URLs (?v=<version>), so a day's caching cannot serve a stale file after an upgrade
_STATIC_HEADERS = {"Cache-Control": "max-age=86400", "X-Content-Type-Options": "nosniff"}
TARGET_PREFIX = "/api/v1/targets/"


class Routes:
    """What the handler needs from the exporter, plus the telemetry path and lifecycle flags."""

    def __init__(self, exporter: ExporterProtocol, telemetry_path: str = "/metrics",
                 lifecycle: bool = False, allocator: Allocator = PROCESS) -> None:
        self.exporter = exporter
        self.telemetry_path = telemetry_path
        self.lifecycle = lifecycle
        self.bodies: Shared[list[bytes]] = Shared()  # concurrent /metrics share one rendering
        self.allocator = allocator  # trimmed after each shared rendering (allocator.py: why)

    def table(self) -> dict[tuple[str, str], Callable[[ExporterHandler], None]]:
        """(method, path) → handler method; the telemetry path is the flag's."""
        return {
            ("GET", "/"): ExporterHandler.landing,
            ("GET", "/static/landing.css"): ExporterHandler.landing_css,
            ("GET", "/static/landing.js"): ExporterHandler.landing_js,
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
        # an unread body closes the connection (the server checks): it never becomes a request
        if not self.check_auth():
            return  # 401 already sent
        path = urlsplit(self.path).path
        problem = query_problem(urlsplit(self.path).query)
        if problem:
            self.send_error_json(HTTPStatus.BAD_REQUEST, problem)
            return
        if method == "DELETE" and path.startswith(TARGET_PREFIX) and len(path) > len(TARGET_PREFIX):
            self._guarded(lambda: registration.delete_target(self, path[len(TARGET_PREFIX):]))
            return
        table = self.routes.table()
        handler = table.get((method, path))
        if handler is None:
            allowed = any(p == path for _, p in table)
            status = HTTPStatus.METHOD_NOT_ALLOWED if allowed else HTTPStatus.NOT_FOUND
            self.send_error_json(status, f"{status.phrase}: {method} {path}")
            return
        self._guarded(lambda: handler(self))

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except (ConnectionError, TimeoutError) as exc:  # the client went away: not our error
            log.debug("client %s went away: %s", self.client_address[0], exc)
            self.close_connection = True
        except FramingError as exc:  # a body refused while reading it (size, bad chunks)
            self.close_connection = True
            self.send_error_json(exc.status, str(exc))
        except Exception:
            log.exception("error serving %s %s", self.command, urlsplit(self.path).path)
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    # -- responses --------------------------------------------------------------------------
    def send_text(self, status: int, text: str) -> None:
        """Send ``text`` as ``text/plain; charset=utf-8``."""
        self.send_body(status, text.encode(), "text/plain; charset=utf-8")

    def send_json(self, status: int, document: Any) -> None:
        """Send ``document`` as indented JSON with sorted keys."""
        body = json.dumps(document, indent=1, sort_keys=True).encode()
        self.send_body(status, body, "application/json")

    def query(self) -> dict[str, str]:
        """The query's parameters (first value of each); _dispatch refused invalid UTF-8."""
        return {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}

    # -- endpoints --------------------------------------------------------------------------
    @property
    def exporter(self) -> ExporterProtocol:
        """The exporter behind the routes
        (:class:`~trtc_exporter.web.protocol.ExporterProtocol`)."""
        return self.routes.exporter

    def metrics(self) -> None:
        """``GET /metrics`` (or the configured telemetry path): the pre-rendered exposition;
        scrapes asking for the same format while one is rendered share its body."""
        stream = self.exporter.exposition.stream
        self.send_exposition(stream, self.routes.bodies)

    def send_registry(self, registry: CollectorRegistry) -> None:
        """Render ``registry`` in the format the ``Accept`` header asks for (OpenMetrics or text
        0.0.4), gzipped when ``Accept-Encoding`` allows it."""
        self.send_exposition(lambda encoder: [encoder(registry)])

    def send_exposition(self, render: Callable[[Encoder], Iterable[bytes]],
                        shared: Shared[list[bytes]] | None = None) -> None:
        """An exposition body in the negotiated format, rendered in pieces: gzipped piece by
        piece when asked (only the compressed body is held whole), else written in turn (no
        copy of a body of many megabytes)."""
        accept = ",".join(self.headers.get_all("Accept") or [])
        encoder, content_type = choose_format(accept)
        headers = {"Vary": "Accept, Accept-Encoding"}
        gzipped = accepts_gzip(",".join(self.headers.get_all("Accept-Encoding") or []))
        if gzipped:
            headers["Content-Encoding"] = "gzip"

        def body() -> list[bytes]:
            return gzip_pieces(render(encoder)) if gzipped else list(render(encoder))

        def shared_body() -> list[bytes]:
            pieces = body()
            self.routes.allocator.trim()  # the rendering's freed pages back to the system
            return pieces

        pieces = body() if shared is None else shared.run((accept, gzipped), shared_body)
        self.send_body(HTTPStatus.OK, pieces, content_type, headers)

    def landing(self) -> None:
        """``GET /``: the landing page (target table, views from the query string), under a
        strict CSP."""
        html = render_landing(self.exporter, self.routes.telemetry_path,
                              parse_view(self.query()))
        self.send_body(HTTPStatus.OK, html.encode(), "text/html; charset=utf-8",
                       {"Content-Security-Policy": LANDING_CSP, "Cache-Control": "no-store",
                        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    def landing_css(self) -> None:
        """``GET /static/landing.css``: the landing page's stylesheet."""
        self.send_body(HTTPStatus.OK, CSS.encode(), "text/css; charset=utf-8", _STATIC_HEADERS)

    def landing_js(self) -> None:
        """``GET /static/landing.js``: the landing page's script."""
        self.send_body(HTTPStatus.OK, JS.encode(), "text/javascript; charset=utf-8",
                       _STATIC_HEADERS)

    def healthy(self) -> None:
        """``GET /-/healthy``: 200, or 503 when polls are overdue past the stall limit."""
        if self.exporter.healthy():
            self.send_text(HTTPStatus.OK, "Healthy.\n")
        else:
            self.send_text(HTTPStatus.SERVICE_UNAVAILABLE, "Poller is stalled: polls are "
                           "overdue (trtc_exporter_poll_overdue_seconds).\n")

    def ready(self) -> None:
        """``GET /-/ready``: 200, or 503 with ``{"ready": false, "reason": …}``."""
        reason = self.exporter.not_ready_reason()
        if not reason:
            self.send_text(HTTPStatus.OK, "Ready.\n")
        else:
            self.send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"ready": False, "reason": reason})

    def reload(self) -> None:
        """``POST``/``PUT /-/reload``: only with ``--web.enable-lifecycle`` (Prometheus' rule);
        SIGHUP always reloads."""
        if not self.routes.lifecycle:
            self.send_error_json(HTTPStatus.FORBIDDEN, "lifecycle APIs are not enabled: start "
                                 "with --web.enable-lifecycle, or send SIGHUP to reload")
            return
        if not self.exporter.runtime.config_path:
            self.send_error_json(HTTPStatus.BAD_REQUEST, "no --config.file to reload (demo mode)")
            return
        ok, message = self.exporter.reload()
        if ok:
            self.send_text(HTTPStatus.OK, message + "\n")
        else:
            self.send_error_json(HTTPStatus.INTERNAL_SERVER_ERROR, *message.splitlines())

    def targets(self) -> None:
        """``GET /api/v1/targets``: every target with its source, status and schedule as JSON."""
        rows = target_rows(self.exporter.target_facts(), self.exporter.now())
        self.send_json(HTTPStatus.OK, {"status": "success", "data": rows})

    def probe(self) -> None:
        """``GET /probe?task_id=…`` (or ``sdk_app_id`` and ``session_id``): the matching targets'
        task families and ``trtc_probe_success``; 400 for a missing or invalid parameter. May
        register the target when ``registration.allow_probe_registration`` is on."""
        params = self.query()
        problem = probe_problem(params)
        if problem:
            self.send_error_json(HTTPStatus.BAD_REQUEST, problem)
            return
        match = probe_matcher(params)
        if match is None:
            self.send_error_json(HTTPStatus.BAD_REQUEST,
                                 "probe needs task_id, or sdk_app_id and session_id")
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


def query_problem(query: str) -> str:
    """Why a query string is refused ("" if it is fine): a parameter whose percent-decoded
    bytes are not UTF-8 would otherwise become U+FFFD silently, or a lone surrogate."""
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        for part in query.split("&"):
            name = part.partition("=")[0]
            try:
                parse_qsl(part, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                return f"query parameter {show(unquote(name, errors='replace'))}: not valid UTF-8"
        return "query: not valid UTF-8"
    except ValueError:
        return "query: malformed"
    for name, _ in pairs:
        if len(name) > MAX_ID_CHARS:
            return f"query parameter name longer than {MAX_ID_CHARS} characters"
    return ""


def probe_problem(params: dict[str, str]) -> str:
    """Why the probe's parameters are refused ("" if they are fine): an id, api or region that
    :func:`~trtc_exporter.target.id_problem` refuses (control or bidi characters, over
    MAX_ID_CHARS), or an ``sdk_app_id`` that is not an integer in 1..2^64-1. A valid
    ``sdk_app_id`` is normalised in ``params`` (``01400000001`` is 1400000001)."""
    for name in PROBE_PARAMS:
        problem = id_problem(params.get(name, ""))
        if problem:
            return f"probe: {name}: {problem}"
    app = params.get("sdk_app_id", "")
    if app:
        if not (app.isascii() and app.isdigit() and 1 <= int(app) <= MAX_SDK_APP_ID):
            return f"probe: sdk_app_id: must be an integer from 1 to {MAX_SDK_APP_ID}, " \
                   f"got {show(app)}"
        params["sdk_app_id"] = str(int(app))
    return ""


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


def gzip_pieces(pieces: Iterable[bytes]) -> list[bytes]:
    """The gzip member (level 1, as before: fast, about 35x on an exposition) of the pieces'
    concatenation, compressed one piece at a time: the plain body is never joined whole."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 16 + 15: a gzip header
    out = [compressor.compress(piece) for piece in pieces]
    out.append(compressor.flush())
    return [chunk for chunk in out if chunk]
