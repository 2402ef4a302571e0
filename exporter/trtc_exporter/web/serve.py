"""Runs the HTTP server and the poller until a stop signal, then shuts both down in order."""

from __future__ import annotations

import argparse
import logging
import threading

from trtc_exporter.signals import install_signals
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.connections import MAX_CONNECTIONS
from trtc_exporter.web.toolkit.server import ExporterHTTPServer, Limits, parse_listen_address
from trtc_exporter.web.toolkit.webconfig import WebConfigError, WebConfigStore

log = logging.getLogger("trtc_exporter")
DEFAULT_LISTEN = ":9877"


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
    """The HTTP(S) server of the first listen address (see :func:`make_servers`)."""
    return make_servers(exporter, args, store)[0]


def make_servers(exporter: ExporterProtocol, args: argparse.Namespace,
                 store: WebConfigStore | None = None) -> list[ExporterHTTPServer]:
    """One server per ``--web.listen-address`` (repeatable, as in exporter-toolkit), all with
    the same routes and web config; ServeError for anything unusable (none is left open)."""
    listens = _listens(args)
    open_paths = frozenset({"/-/healthy", "/-/ready"}) if args.health_open else frozenset()
    routes = Routes(exporter, args.telemetry_path, getattr(args, "enable_lifecycle", False))
    limits = Limits(max_connections=getattr(args, "max_connections", MAX_CONNECTIONS))
    servers: list[ExporterHTTPServer] = []
    try:
        for listen in listens:
            try:
                address = parse_listen_address(listen)
                servers.append(ExporterHTTPServer(address, handler_class(routes), store,
                                                  unauthenticated_paths=open_paths,
                                                  limits=limits))
            except ValueError as exc:
                raise ServeError(str(exc)) from None
            except OSError as exc:
                raise ServeError(f"--web.listen-address {listen}: {exc.strerror}") from None
    except ServeError:
        for server in servers:
            server.server_close()
        raise
    return servers


def _listens(args: argparse.Namespace) -> list[str]:
    listen = args.listen
    if isinstance(listen, str):
        return [listen]
    return list(dict.fromkeys(listen or [DEFAULT_LISTEN]))  # a repeated address binds once


def serve(exporter: ExporterProtocol, args: argparse.Namespace,
          store: WebConfigStore | None = None) -> int:
    """Serve HTTP and poll until SIGTERM/SIGINT, then stop both (5 s for requests in flight)."""
    servers = make_servers(exporter, args, store)
    stop = threading.Event()
    install_signals(exporter.reload, stop)
    exporter.start()
    config = servers[0].web_config()
    scheme = "https" if config is not None and config.tls is not None else "http"
    for server in servers:
        threading.Thread(target=server.serve_forever, name="http-loop", daemon=True).start()
        address = server.bound_address()
        where, _, note = address.partition(" ")
        log.info("listening on %s://%s/ (metrics at %s)%s", scheme, where,
                 args.telemetry_path, f" on all {note[1:-1]} addresses" if note else "")
    while not stop.wait(0.5):
        pass
    exporter.stop(timeout=5.0)
    for server in servers:
        server.shutdown()
        server.server_close()
    log.info("stopped")
    return 0
