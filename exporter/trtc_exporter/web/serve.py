"""Runs the HTTP server and the poller until a stop signal, then shuts both down in order."""

from __future__ import annotations

import argparse
import logging
import threading

from trtc_exporter.signals import Signals
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.connections import MAX_CONNECTIONS
from trtc_exporter.web.toolkit.server import ExporterHTTPServer, Limits, parse_listen_address
from trtc_exporter.web.toolkit.webconfig import WebConfigError, WebConfigStore
from trtc_exporter.web.webhook import WebhookEndpoint, make_webhook_server

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
    """Serve in a thread and log the address really bound (all interfaces say so)."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    config = server.web_config()
    scheme = "https" if config is not None and config.tls is not None else "http"
    where, _, note = server.bound_address().partition(" ")
    log.info("listening on %s://%s%s%s", scheme, where, what,
             f" on all {note[1:-1]} addresses" if note else "")


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
          store: WebConfigStore | None = None,
          webhook: ExporterHTTPServer | None = None, signals: Signals | None = None) -> int:
    """Serve HTTP on every listen address (and the callback listener ``webhook``, if any) and
    poll until SIGTERM/SIGINT, then stop them (5 s for requests in flight).

    ``signals`` are the handlers the CLI installed before start-up (installed here if None)."""
    servers = make_servers(exporter, args, store)
    signals = signals or Signals().install()
    signals.running(exporter.reload)
    stop = signals.stop
    if webhook is not None:  # first: a demo's simulator sends callbacks from exporter.start()
        _start(webhook, "webhook", " (TRTC callbacks at POST /webhook/trtc)")
    exporter.start()
    for server in servers:
        _start(server, "http", f"/ (metrics at {args.telemetry_path})")
    # no timeout: the ``signals`` thread sets stop (signals.py), so the main thread does not
    # wake twice a second
    stop.wait()
    if webhook is not None:
        webhook.shutdown()
        webhook.server_close()
    exporter.stop(timeout=5.0)
    for server in servers:
        server.shutdown()
        server.server_close()
    log.info("stopped")
    return 0
