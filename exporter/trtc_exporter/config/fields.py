"""Field checks shared by the config blocks: URLs and file paths.

One home for each, so ``api.endpoint`` and ``webhook.forward_to`` accept the same URLs and every
``*_file``/``*_path`` field refuses the same paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from trtc_exporter.errors import Errors


def is_http_url(text: str) -> bool:
    """True for an ``http://`` or ``https://`` URL with a host and, if given, a port > 0.

    ``urlsplit`` raises ValueError for an unclosed IPv6 bracket or a port past 65535; both are
    answered False here, so the caller reports the field instead of crashing.
    """
    try:
        parts = urlsplit(text)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and (
            parts.port is None or parts.port > 0)
    except ValueError:  # "http://[::1", "http://host:99999"
        return False


def file_path(raw: Mapping[str, Any], key: str, prefix: str, errors: Errors) -> str | None:
    """A file path: a non-empty string without NUL (which no file system accepts)."""
    value = errors.string(raw, key, prefix, None)
    if value is not None and (not value or "\x00" in value):
        errors.add(prefix + key, "must not be empty" if not value else "must be a file path")
        return None
    return value
