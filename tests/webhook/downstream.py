"""A downstream callback server on 127.0.0.1 that records what it gets and can go down."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Downstream:
    """Records (body, Sign, SdkAppId) of each POST; answers ``status`` (or 400 for bodies
    containing ``poison``). ``stop()`` closes the port (connection refused), ``start()`` reopens
    the same port."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str | None, str | None]] = []
        self.status = 200
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/trtc-callback"

    def start(self) -> Downstream:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                code = 400 if b"poison" in raw else owner.status
                if code == 200:
                    owner.received.append((raw, self.headers.get("Sign"),
                                           self.headers.get("SdkAppId")))
                self.send_response(code)
                self.send_header("Content-Length", "10")
                self.end_headers()
                self.wfile.write(b'{"code":0}')

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
