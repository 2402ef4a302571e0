"""Runs the HTTP server and the poller until a stop signal, then shuts both down in order."""

from __future__ import annotations

import argparse
import logging
import threading

from trtc_exporter.signals import Signals
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer, parse_listen_address
from trtc_exporter.web.toolkit.webconfig import WebConfigError, WebConfigStore

log = logging.getLogger("trtc_exporter")


class ServeError(Exception):
    """The server could not start (bad listen address, port in use, bad web config)."""


def load_web_config(path: str) -> WebConfigStore | None:
    """The ``--web.config.file`` store (None without one); ServeError when it is unusable."""
    try:
        return WebConfigStore(path) if path else None
    except WebConfigError as exc:
        raise ServeError(str(exc)) from None


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
          store: WebConfigStore | None = None, signals: Signals | None = None) -> int:
    """Serve HTTP and poll until SIGTERM/SIGINT, then stop both (5 s for requests in flight).

    ``signals`` are the handlers the CLI installed before start-up (installed here if None)."""
    server = make_server(exporter, args, store)
    signals = signals or Signals().install()
    signals.running(exporter.reload)
    stop = signals.stop
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
