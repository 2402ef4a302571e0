"""The ``--web.config.file`` of the Prometheus exporter-toolkit: TLS, mTLS, basic auth, headers.

Same keys, defaults and checks as the toolkit, so one web config serves every exporter of a site.
A file that parses is a file that serves: certificates, keys and CAs are loaded into an
``SSLContext`` while parsing, not at the first handshake. ``WebConfigStore`` re-reads the file and
the files it names when they change, so certificates and users rotate without a restart.

This module parses the file, the headers and the users and owns the store; the TLS section is
parsed by :mod:`trtc_exporter.web.toolkit.tls`. Every public name is importable from here.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.errors import Errors
from trtc_exporter.secret import Secret
from trtc_exporter.textfile import TextFileError, UnreadableFile, read_text
from trtc_exporter.web.toolkit.tls import TLS as _TLS
from trtc_exporter.web.toolkit.tls import TLSServerConfig, get_bool, parse_tls, section
from trtc_exporter.yamlload import YamlError, load_yaml

__all__ = ["REREAD_INTERVAL_SECONDS", "TLSServerConfig", "WebConfig", "WebConfigError",
           "WebConfigStore", "load_web_config"]

log = logging.getLogger("trtc_exporter.webconfig")  # caller= stays as before

REREAD_INTERVAL_SECONDS = 1.0
"""``current()`` stats the files at most this often, so a busy scrape loop costs nothing."""

# The toolkit's header allow-list (web/handler.go): None = any value, else the accepted values.
_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None, "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",), "X-XSS-Protection": None,
    "Strict-Transport-Security": None}
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")


class WebConfigError(ValueError):
    """Invalid web config; one line per problem, each starting with the key path."""

    def __init__(self, message: str, files: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.files = files  # files the config names, so a fix to any of them is noticed


@dataclass(frozen=True, slots=True)
class WebConfig:
    """One parsed web config; immutable, so a request sees one consistent version."""

    tls: TLSServerConfig | None = None
    headers: tuple[tuple[str, str], ...] = ()
    users: Mapping[str, Secret] = field(default_factory=dict, repr=False)
    dummy_cost: int = 10  # bcrypt cost of the decoy check for unknown users
    notes: tuple[str, ...] = ()  # accepted settings this server cannot honour; worth a log line
    files: tuple[str, ...] = ()


def load_web_config(path: str) -> WebConfig:
    """Parse and check ``path``; raise :class:`WebConfigError` naming every wrong key."""
    try:
        raw = _yaml_load(read_text(path))  # BOM, CRLF, UTF-16: textfile names the problem
    except UnreadableFile as exc:
        raise WebConfigError(f"{path}: cannot read: {exc}") from None
    except TextFileError as exc:
        raise WebConfigError(f"{path}: {exc}") from None
    errors = Errors()
    notes: list[str] = []
    top = section(raw, "", (_TLS, "http_server_config", "basic_auth_users", "rate_limit"), errors)
    if "rate_limit" in top:
        errors.append("rate_limit: not supported by this exporter; use a reverse proxy")
    headers = _parse_http(top.get("http_server_config"), errors, notes)
    users = _parse_users(top.get("basic_auth_users"), errors)
    tls, files = parse_tls(top.get(_TLS), os.path.dirname(os.path.abspath(path)), errors, notes)
    if errors.lines:
        raise WebConfigError("\n".join(errors.lines), files=files)
    costs = Counter(int(h.reveal()[4:6]) for h in users.values())
    dummy_cost = costs.most_common(1)[0][0] if costs else 10
    return WebConfig(tls, headers, MappingProxyType(users), dummy_cost, tuple(notes), files)


def _yaml_load(data: str) -> object:
    try:
        return load_yaml(data, keep_text=True)  # user "1001" stays "1001", as in Go
    except YamlError as exc:
        raise WebConfigError(str(exc)) from None


def _parse_http(raw: object, errors: Errors, notes: list[str]) -> tuple[tuple[str, str], ...]:
    sec = section(raw, "http_server_config", ("http2", "headers"), errors)
    if "http2" in sec and get_bool(sec, "http2", "http_server_config", errors):
        notes.append("http_server_config.http2: ignored; Python's http.server speaks HTTP/1.1")
    path = "http_server_config.headers"
    raw_headers = section(sec.get("headers"), path, tuple(_HEADERS), errors,
                           "can not be configured; allowed: " + ", ".join(_HEADERS))
    headers: list[tuple[str, str]] = []
    for name, value in raw_headers.items():
        allowed = _HEADERS[name]
        if value is None:  # the toolkit's "unset if blank"
            continue
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            errors.append(f"{path}.{name}: must be a one-line string")
        elif not (value.isascii() and value.isprintable()):
            errors.append(f"{path}.{name}: must be printable ASCII (HTTP cannot carry the rest)")
        elif allowed and value and value not in allowed:
            errors.append(f'{path}.{name}: invalid value "{value}"; one of ' + ", ".join(allowed))
        elif value:
            headers.append((name, value))
    return tuple(headers)


def _parse_users(raw: object, errors: Errors) -> dict[str, Secret]:
    if raw is not None and not isinstance(raw, dict):
        errors.append("basic_auth_users: must be a mapping of username to bcrypt hash")
    users: dict[str, Secret] = {}
    for name, hashed in raw.items() if isinstance(raw, dict) else ():
        path = f"basic_auth_users.{name}"
        if not isinstance(name, str) or not name or ":" in name:
            errors.append(f'{path}: a username must be a non-empty string without ":"')
        elif not isinstance(hashed, str) or not _BCRYPT.fullmatch(hashed):
            errors.append(f"{path}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04-31)")
        else:
            users[name] = Secret(hashed)
    return users


def _fingerprint(paths: tuple[str, ...]) -> tuple[object, ...]:
    """Stat data of every watched file (None when missing): the cheap change detector."""
    def one(path: str) -> object:
        with contextlib.suppress(OSError, ValueError):
            st = os.stat(path)
            return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        return None
    return tuple(one(path) for path in paths)


def _digest(paths: tuple[str, ...]) -> bytes:
    """Content hash of the watched files, so a ``touch`` is not a reload."""
    h = hashlib.sha256()
    for path in paths:
        data = b"\0missing"
        with contextlib.suppress(OSError, ValueError), open(path, "rb") as fh:
            data = fh.read()
        h.update(len(data).to_bytes(8, "big") + data)
    return h.digest()


class WebConfigStore:
    """The current web config, swapped when its files change; a bad file keeps the last good one.

    ``last_error`` holds the message of the latest failed re-read (None after a good one);
    ``reload_failures`` and ``reloads`` count failed and successful re-reads, for metrics.
    """

    def __init__(self, path: str, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = path
        self.last_error: str | None = None
        self.reload_failures = 0
        self.reloads = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._paths: tuple[str, ...] = (path,)
        self._stamp, self._digest = _fingerprint(self._paths), _digest(self._paths)
        self._config = load_web_config(path)  # invalid at start: the CLI prints it and exits 2
        self._rewatch(self._config.files)
        self._checked_at = clock.monotonic()
        _log_notes(self._config)

    def current(self) -> WebConfig:
        """The config to use now; looks at the files at most once per re-read interval."""
        with self._lock:
            now = self._clock.monotonic()
            if now - self._checked_at >= REREAD_INTERVAL_SECONDS:
                self._checked_at = now
                self._refresh()
            return self._config

    def _rewatch(self, files: tuple[str, ...]) -> None:
        """Watch the config file plus the files it names (stamps taken before parsing stay)."""
        paths = (self.path, *files)
        if paths != self._paths:
            self._paths, self._stamp, self._digest = paths, _fingerprint(paths), _digest(paths)

    def _refresh(self) -> None:
        stamp = _fingerprint(self._paths)
        if stamp == self._stamp:
            return
        digest = _digest(self._paths)  # taken before parsing: a write during it is seen next time
        self._stamp = stamp
        if digest == self._digest:
            return
        self._digest = digest
        try:
            config = load_web_config(self.path)
            if (config.tls is None) != (self._config.tls is None):
                raise WebConfigError(f"{_TLS}: turning TLS on or off needs a restart",
                                     files=config.files)
        except WebConfigError as exc:
            self.reload_failures += 1
            self.last_error = str(exc)
            self._rewatch(exc.files)
            log.warning("web config %s: reload failed, keeping the last good one: %s",
                        self.path, exc)
            return
        self._config, self.last_error = config, None
        self.reloads += 1
        self._rewatch(config.files)
        log.info("web config %s reloaded", self.path)
        _log_notes(config)


def _log_notes(config: WebConfig) -> None:
    for note in config.notes:
        log.warning("web config: %s", note)
