"""The one shape of every error answer: ``{"status": "error", "errors": ["…"]}``.

The registration API's shape (and close to the Prometheus HTTP API's ``status``/``error``), used
for every 4xx and 5xx the exporter sends, from the connection loop to the endpoints.
"""

from __future__ import annotations

import json
from http import HTTPStatus

__all__ = ["error_body", "raw_error"]


def error_body(*errors: str) -> bytes:
    """The JSON error document for these messages (one line each, without a newline)."""
    return json.dumps({"status": "error", "errors": list(errors)}, indent=1).encode() + b"\n"


def raw_error(status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A complete HTTP/1.1 error response that closes the connection (for the loop, no handler);
    ``headers`` are the web config's security headers."""
    body = error_body(message)
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            f"Content-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("ascii") + body
