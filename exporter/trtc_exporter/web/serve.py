"""Runs the HTTP server and the poller until a stop signal, then shuts both down in order."""

from __future__ import annotations

import argparse
import logging
import threading

from trtc_exporter.signals import install_signals
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer, parse_listen_address
from trtc_exporter.web.toolkit.webconfig import WebConfigError, WebConfigStore
from trtc_exporter.web.webhook import WebhookEndpoint, make_webhook_server

log = logging.getLogger("trtc_exporter")


class ServeError(Exception):
    """The server could not start (bad listen address, port in use, bad web config)."""


def load_web_config(path: str) -> WebConfigStore | None:
    """The ``--web.config.file`` store (None without one); ServeError when it is unusable."""
    try:
        return WebConfigStore(path) if path else None
    except WebConfigError as exc:
        raise ServeError(str(exc)) from None


def make_webhook_listener(address: str, endpoint: WebhookEndpoint,
                          config_path: str = "") -> ExporterHTTPServer:
    """The callback listener of ``--webhook.listen-address`` with ``--webhook.config.file``
    applied; ServeError (naming the flag) for anything unusable."""
    try:
        store = WebConfigStore(config_path) if config_path else None
    except WebConfigError as exc:
        raise ServeError(f"--webhook.config.file: {exc}") from None
    try:
        parse_listen_address(address)
        return make_webhook_server(address, endpoint, store)
    except ValueError as exc:
        raise ServeError(f"--webhook.listen-address: {exc}") from None
    except OSError as exc:
        raise ServeError(f"--webhook.listen-address {address}: {exc.strerror}") from None


def _start(server: ExporterHTTPServer, name: str, what: str) -> None:
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    shown = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    config = server.web_config()
    scheme = "https" if config is not None and config.tls is not None else "http"
    log.info("listening on %s://%s:%s%s", scheme, shown, port, what)


def make_server(exporter: ExporterProtocol, args: argparse.Namespace,
                store: WebConfigStore | None = None) -> ExporterHTTPServer:
    """The HTTP(S) server with the web config applied; ServeError for anything unusable."""
    try:
        address = parse_listen_address(args.listen)
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    open_paths = frozenset({"/-/healthy", "/-/ready"}) if args.health_open else frozenset()
    routes = Routes(exporter, args.telemetry_path)
    try:
        return ExporterHTTPServer(address, handler_class(routes), store,
                                  unauthenticated_paths=open_paths)
    except OSError as exc:
        raise ServeError(f"--web.listen-address {args.listen}: {exc.strerror}") from None


def serve(exporter: ExporterProtocol, args: argparse.Namespace,
          store: WebConfigStore | None = None,
          webhook: ExporterHTTPServer | None = None) -> int:
    """Serve HTTP (and the callback listener ``webhook``, if any) and poll until
    SIGTERM/SIGINT, then stop them (5 s for requests in flight)."""
    server = make_server(exporter, args, store)
    stop = threading.Event()
    install_signals(exporter.reload, stop)
    if webhook is not None:  # first: a demo's simulator sends callbacks from exporter.start()
        _start(webhook, "webhook", " (TRTC callbacks at POST /webhook/trtc)")
    exporter.start()
    _start(server, "http", f"/ (metrics at {args.telemetry_path})")
    while not stop.wait(0.5):
        pass
    if webhook is not None:
        webhook.shutdown()
        webhook.server_close()
    exporter.stop(timeout=5.0)
    server.shutdown()
    server.server_close()
    log.info("stopped")
    return 0
