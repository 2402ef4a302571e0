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

log = logging.getLogger("trtc_exporter")


class ServeError(Exception):
    """The server could not start (bad listen address, port in use, bad web config)."""


def check_registration_auth(exporter: ExporterProtocol, store: WebConfigStore | None) -> None:
    """An enabled registration API must be authenticated: bearer token or basic auth."""
    registration = exporter.config.registration
    if not registration.enabled or exporter.bearer_token() is not None:
        return
    if store is not None and store.current().users:
        return
    raise ServeError("registration.enabled needs registration.bearer_token_file, or "
                     "basic_auth_users in --web.config.file")


def make_server(exporter: ExporterProtocol, args: argparse.Namespace) -> ExporterHTTPServer:
    """The HTTP(S) server with the web config applied; ServeError for anything unusable."""
    try:
        address = parse_listen_address(args.listen)
        store = WebConfigStore(args.web_config) if args.web_config else None
    except (ValueError, WebConfigError) as exc:
        raise ServeError(str(exc)) from None
    check_registration_auth(exporter, store)
    open_paths = frozenset({"/-/healthy", "/-/ready"}) if args.health_open else frozenset()
    routes = Routes(exporter, args.telemetry_path)
    try:
        return ExporterHTTPServer(address, handler_class(routes), store,
                                  unauthenticated_paths=open_paths)
    except OSError as exc:
        raise ServeError(f"--web.listen-address {args.listen}: {exc.strerror}") from None


def serve(exporter: ExporterProtocol, args: argparse.Namespace) -> int:
    server = make_server(exporter, args)
    stop = threading.Event()
    install_signals(exporter.reload, stop)
    exporter.start()
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    shown = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    config = server.web_config()
    scheme = "https" if config is not None and config.tls is not None else "http"
    log.info("listening on %s://%s:%s/ (metrics at %s)", scheme, shown, port,
             args.telemetry_path)
    while not stop.wait(0.5):
        pass
    exporter.stop(timeout=5.0)
    server.shutdown()
    server.server_close()
    log.info("stopped")
    return 0
