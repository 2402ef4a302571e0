"""Runs the HTTP server and the poller until a stop signal, then shuts both down in order."""

from __future__ import annotations

import argparse
import logging
import threading
from http.server import ThreadingHTTPServer

from trtc_exporter.app import Exporter
from trtc_exporter.web import Routes, handler_class

log = logging.getLogger("trtc_exporter")


class ServeError(Exception):
    """The server could not start (bad listen address, port in use, bad web config)."""


def parse_listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ServeError(f"--web.listen-address: expected host:port or :port, got {text!r}")
    return host.strip("[]"), int(port)


def serve(exporter: Exporter, args: argparse.Namespace) -> int:
    from trtc_exporter.cli import install_signals

    address = parse_listen_address(args.listen)
    routes = Routes(exporter, args.telemetry_path)
    try:
        server = ThreadingHTTPServer(address, handler_class(routes))
    except OSError as exc:
        raise ServeError(f"--web.listen-address {args.listen}: {exc.strerror}") from None
    server.daemon_threads = True
    stop = threading.Event()
    install_signals(exporter, stop)
    exporter.start()
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    shown = host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    log.info("listening on http://%s:%s/ (metrics at %s)", shown, port, args.telemetry_path)
    while not stop.wait(0.5):
        pass
    exporter.stop(timeout=5.0)
    server.shutdown()
    server.server_close()
    log.info("stopped")
    return 0
