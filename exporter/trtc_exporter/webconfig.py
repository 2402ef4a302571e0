"""The ``--web.config.file`` of the Prometheus exporter-toolkit: TLS, mTLS, basic auth, headers.

Same keys, defaults and checks as the toolkit, so one web config serves every exporter of a site.
A file that parses is a file that serves: certificates, keys and CAs are loaded into an
``SSLContext`` while parsing, not at the first handshake. ``WebConfigStore`` re-reads the file and
the files it names when they change, so certificates and users rotate without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import ssl
import tempfile
import threading
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import yaml

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.secret import Secret

log = logging.getLogger(__name__)

REREAD_INTERVAL_SECONDS = 1.0
"""``current()`` stats the files at most this often, so a busy scrape loop costs nothing."""

_TLS = "tls_server_config"
_STR_KEYS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file",
             "client_auth_type", "min_version", "max_version")
_TLS_KEYS = (*_STR_KEYS, "client_allowed_sans", "cipher_suites", "prefer_server_cipher_suites",
             "curve_preferences")
# Python's ssl cannot accept an unverified client certificate, so the two "any certificate" modes
# verify too (stricter than Go); RequestClientCert asks for a certificate nothing would look at.
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "RequestClientCert": ssl.CERT_NONE,
                "RequireAnyClientCert": ssl.CERT_REQUIRED, "RequireClientCert": ssl.CERT_REQUIRED,
                "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_SAN_AUTH = ("RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert")
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# Go's tls.CipherSuites() names -> OpenSSL names; "-" = TLS 1.3 suite, not configurable (as in Go).
_CIPHERS = dict(line.split() for line in """
    TLS_RSA_WITH_3DES_EDE_CBC_SHA DES-CBC3-SHA
    TLS_RSA_WITH_AES_128_CBC_SHA AES128-SHA
    TLS_RSA_WITH_AES_256_CBC_SHA AES256-SHA
    TLS_RSA_WITH_AES_128_GCM_SHA256 AES128-GCM-SHA256
    TLS_RSA_WITH_AES_256_GCM_SHA384 AES256-GCM-SHA384
    TLS_AES_128_GCM_SHA256 -
    TLS_AES_256_GCM_SHA384 -
    TLS_CHACHA20_POLY1305_SHA256 -
    TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA ECDHE-ECDSA-AES128-SHA
    TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA ECDHE-ECDSA-AES256-SHA
    TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA ECDHE-RSA-DES-CBC3-SHA
    TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA ECDHE-RSA-AES128-SHA
    TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA ECDHE-RSA-AES256-SHA
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ECDHE-ECDSA-AES128-GCM-SHA256
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 ECDHE-ECDSA-AES256-GCM-SHA384
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 ECDHE-RSA-AES128-GCM-SHA256
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 ECDHE-RSA-AES256-GCM-SHA384
    TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 ECDHE-RSA-CHACHA20-POLY1305
    TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 ECDHE-ECDSA-CHACHA20-POLY1305
""".strip().splitlines())
_CURVES = ("CurveP256", "CurveP384", "CurveP521", "X25519")
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
class TLSServerConfig:
    """A ready ``SSLContext`` plus the post-handshake SAN allow-list (empty = any)."""

    context: ssl.SSLContext
    client_allowed_sans: frozenset[str] = frozenset()


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
        with open(path, "rb") as fh:
            raw = _yaml_load(fh.read())
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    errors: list[str] = []
    notes: list[str] = []
    top = _section(raw, "", (_TLS, "http_server_config", "basic_auth_users", "rate_limit"), errors)
    if "rate_limit" in top:
        errors.append("rate_limit: not supported by this exporter; use a reverse proxy")
    headers = _parse_http(top.get("http_server_config"), errors, notes)
    users = _parse_users(top.get("basic_auth_users"), errors)
    tls, files = _parse_tls(top.get(_TLS), os.path.dirname(os.path.abspath(path)), errors, notes)
    if errors:
        raise WebConfigError("\n".join(errors), files=files)
    costs = Counter(int(h.reveal()[4:6]) for h in users.values())
    dummy_cost = costs.most_common(1)[0][0] if costs else 10
    return WebConfig(tls, headers, MappingProxyType(users), dummy_cost, tuple(notes), files)


class _StrictLoader(yaml.SafeLoader):
    """Rejects duplicate keys, like the toolkit's strict YAML decoding (a repeated user!)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: list[object] = []
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f'duplicate key "{key}"', key_node.start_mark)
            seen.append(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_load(data: bytes) -> object:
    try:
        return yaml.load(data, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise WebConfigError(f"invalid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError:
        raise WebConfigError("invalid YAML") from None


def _section(raw: object, path: str, keys: tuple[str, ...], errors: list[str],
             unknown: str = "unknown key") -> dict[str, object]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{path or '(top level)'}: must be a mapping")
        return {}
    errors.extend(f"{path + '.' if path else ''}{key}: {unknown}" for key in raw if key not in keys)
    return {key: value for key, value in raw.items() if key in keys}


def _get_list(sec: dict[str, object], key: str, errors: list[str]) -> list[str]:
    value = sec.get(key)
    if value is not None and (not isinstance(value, list)
                              or not all(isinstance(item, str) for item in value)):
        errors.append(f"{_TLS}.{key}: must be a list of strings")
        return []
    return value or []


def _get_bool(sec: dict[str, object], key: str, path: str, errors: list[str]) -> bool:
    value = sec.get(key, True)  # both booleans of the format default to true
    if not isinstance(value, bool):
        errors.append(f"{path}.{key}: must be true or false, got {value!r}")
        return True
    return value


def _parse_http(raw: object, errors: list[str], notes: list[str]) -> tuple[tuple[str, str], ...]:
    sec = _section(raw, "http_server_config", ("http2", "headers"), errors)
    if "http2" in sec and _get_bool(sec, "http2", "http_server_config", errors):
        notes.append("http_server_config.http2: ignored; Python's http.server speaks HTTP/1.1")
    path = "http_server_config.headers"
    raw_headers = _section(sec.get("headers"), path, tuple(_HEADERS), errors,
                           "can not be configured; allowed: " + ", ".join(_HEADERS))
    headers: list[tuple[str, str]] = []
    for name, value in raw_headers.items():
        allowed = _HEADERS[name]
        if value is None:  # the toolkit's "unset if blank"
            continue
        if not isinstance(value, str) or "\r" in value or "\n" in value:
            errors.append(f"{path}.{name}: must be a one-line string")
        elif allowed and value and value not in allowed:
            errors.append(f'{path}.{name}: invalid value "{value}"; one of ' + ", ".join(allowed))
        elif value:
            headers.append((name, value))
    return tuple(headers)


def _parse_users(raw: object, errors: list[str]) -> dict[str, Secret]:
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


def _parse_tls(raw: object, base: str, errors: list[str],
               notes: list[str]) -> tuple[TLSServerConfig | None, tuple[str, ...]]:
    n_errors = len(errors)
    sec = _section(raw, _TLS, _TLS_KEYS, errors)
    raw_s = {key: sec.get(key) for key in _STR_KEYS}
    errors.extend(f"{_TLS}.{k}: must be a string" for k, v in raw_s.items()
                  if not isinstance(v, str | None))  # never echo the value: it may be a key
    s = {key: value if isinstance(value, str) else "" for key, value in raw_s.items()}
    files = tuple(os.path.join(base, s[k]) for k in ("cert_file", "key_file", "client_ca_file")
                  if s[k])
    for inline, required in (("cert", True), ("key", True), ("client_ca", False)):
        if s[inline] and s[f"{inline}_file"]:
            errors.append(f"{_TLS}.{inline}: set {inline} or {inline}_file, not both")
        elif required and sec and not (raw_s[inline] or raw_s[f"{inline}_file"]):
            errors.append(f"{_TLS}.{inline}_file: required (or {inline} inline)")
    auth = s["client_auth_type"] = s["client_auth_type"] or "NoClientCert"
    sans = _get_list(sec, "client_allowed_sans", errors)
    if auth not in _CLIENT_AUTH:
        errors.append(f'{_TLS}.client_auth_type: unknown value "{auth}"; one of '
                      + ", ".join(k for k in _CLIENT_AUTH if k != "RequireClientCert"))
    elif auth == "NoClientCert" and (s["client_ca"] or s["client_ca_file"]):
        errors.append(f"{_key(s, 'client_ca')}: set, but client_auth_type is NoClientCert")
    elif sans and auth not in _SAN_AUTH:
        errors.append(f"{_TLS}.client_allowed_sans: needs client_auth_type RequireAnyClientCert "
                      "or RequireAndVerifyClientCert")
    _check_lists(sec, s, errors, notes)
    if not sec or len(errors) > n_errors:
        return None, files
    context = _build_context(s, sec, base, errors, notes)
    return (TLSServerConfig(context, frozenset(sans)) if context else None), files


def _check_lists(sec: dict[str, object], s: dict[str, str], errors: list[str],
                 notes: list[str]) -> None:
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        s[key] = s[key] or default
        if s[key] not in _VERSIONS:
            errors.append(f'{_TLS}.{key}: unknown value "{s[key]}"; one of ' + ", ".join(_VERSIONS))
    _get_bool(sec, "prefer_server_cipher_suites", _TLS, errors)
    if _VERSIONS.get(s["min_version"], 0) > _VERSIONS.get(s["max_version"], 1 << 16):
        errors.append(f"{_TLS}.max_version: lower than min_version")
    for key, known, what in (("cipher_suites", _CIPHERS, "cipher suite"),
                             ("curve_preferences", _CURVES, "curve")):
        errors.extend(f'{_TLS}.{key}[{i}]: unknown {what} "{name}"'
                      for i, name in enumerate(_get_list(sec, key, errors)) if name not in known)
    if sec.get("curve_preferences"):
        notes.append(f"{_TLS}.curve_preferences: ignored; Python's ssl uses OpenSSL's defaults")
    if s["client_auth_type"] in ("RequestClientCert", *_SAN_AUTH[:2]):
        like = "NoClientCert" if s["client_auth_type"] == "RequestClientCert" else \
            "RequireAndVerifyClientCert"
        notes.append(f"{_TLS}.client_auth_type: acts as {like} here (Python's ssl)")


def _build_context(s: dict[str, str], sec: dict[str, object], base: str, errors: list[str],
                   notes: list[str]) -> ssl.SSLContext | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS10/TLS11 are deprecated, but still the user's call
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[s["min_version"]]
        ctx.maximum_version = _VERSIONS[s["max_version"]]
    if _get_bool(sec, "prefer_server_cipher_suites", _TLS, errors):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    _set_ciphers(ctx, _get_list(sec, "cipher_suites", errors), errors, notes)
    cert = _pem(s, "cert", base, b"CERTIFICATE", errors)
    key = _pem(s, "key", base, b"PRIVATE KEY", errors)
    if key is not None and b"ENCRYPTED" in key:
        errors.append(f"{_key(s, 'key')}: encrypted private keys are not supported")
    elif cert is not None and key is not None:
        with _as_file(cert) as cert_path, _as_file(key) as key_path:
            try:
                ctx.load_cert_chain(cert_path, key_path, password=lambda: b"")
            except (ssl.SSLError, OSError) as exc:
                reason = getattr(exc, "reason", None) or "unreadable"
                errors.append(f"{_key(s, 'key')}: does not load with the certificate ({reason})")
    ctx.verify_mode = _CLIENT_AUTH[s["client_auth_type"]]
    if ctx.verify_mode != ssl.CERT_NONE:
        _load_client_cas(ctx, s, base, errors, notes)
    return None if errors else ctx


def _set_ciphers(ctx: ssl.SSLContext, suites: list[str], errors: list[str],
                 notes: list[str]) -> None:
    wanted = [(go, _CIPHERS[go]) for go in suites if _CIPHERS.get(go, "-") != "-"]
    usable = [ossl for _, ossl in wanted if _openssl_has(ossl)]
    notes.extend(f'{_TLS}.cipher_suites: "{go}" is not offered; this OpenSSL refuses it'
                 for go, ossl in wanted if not _openssl_has(ossl))
    if usable:
        ctx.set_ciphers(":".join(usable))
    elif wanted:
        errors.append(f"{_TLS}.cipher_suites: none is available in {ssl.OPENSSL_VERSION}")
    elif suites and ctx.maximum_version < ssl.TLSVersion.TLSv1_3:
        errors.append(f"{_TLS}.cipher_suites: lists only TLS 1.3 suites, but max_version < TLS13")
    elif suites:  # as in Go: without a TLS 1.2 suite no TLS 1.2 handshake can succeed
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        notes.append(f"{_TLS}.cipher_suites: only TLS 1.3 suites listed; TLS 1.2 is off")


def _openssl_has(name: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
    except ssl.SSLError:
        return False
    return True


def _load_client_cas(ctx: ssl.SSLContext, s: dict[str, str], base: str, errors: list[str],
                     notes: list[str]) -> None:
    if not (s["client_ca"] or s["client_ca_file"]):  # Go then verifies against the system roots
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        notes.append(f"{_TLS}.client_ca_file: not set; client certificates are checked against "
                     "the system CAs")
        return
    ca = _pem(s, "client_ca", base, b"CERTIFICATE", errors)
    try:
        if ca is not None:
            ctx.load_verify_locations(cadata=ca.decode("latin-1"))
    except ssl.SSLError:
        errors.append(f"{_key(s, 'client_ca')}: not a usable CA certificate")


def _key(s: dict[str, str], name: str) -> str:
    """The key path the user wrote for ``name``: the ``_file`` variant or the inline one."""
    return f"{_TLS}.{name}_file" if s[f"{name}_file"] else f"{_TLS}.{name}"


def _pem(s: dict[str, str], name: str, base: str, marker: bytes, errors: list[str]) -> bytes | None:
    """The PEM bytes of ``name`` or ``name_file``; errors name the key, never the data."""
    written = s[f"{name}_file"]
    try:
        if written:
            with open(os.path.join(base, written), "rb") as fh:
                data = fh.read()
        else:
            data = s[name].encode()
    except OSError as exc:
        errors.append(f'{_key(s, name)}: cannot read "{written}": {exc.strerror}')
        return None
    if b"-----BEGIN " not in data or marker + b"-----" not in data:
        errors.append(f'{_key(s, name)}: no PEM "{marker.decode()}" block found')
        return None
    return data


@contextlib.contextmanager
def _as_file(data: bytes) -> Iterator[str]:
    """``load_cert_chain`` wants paths; an in-memory file keeps inline keys off the disk."""
    if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
        fd = os.memfd_create("pem", os.MFD_CLOEXEC)
        path = f"/proc/self/fd/{fd}"
    else:
        fd, path = tempfile.mkstemp()  # mode 0600, removed right after loading
    try:
        with open(fd, "wb", closefd=False) as fh:
            fh.write(data)
        yield path
    finally:
        os.close(fd)
        if not path.startswith("/proc/"):
            os.unlink(path)


def _fingerprint(paths: tuple[str, ...]) -> tuple[object, ...]:
    """Stat data of every watched file (None when missing): the cheap change detector."""
    def one(path: str) -> object:
        with contextlib.suppress(OSError):
            st = os.stat(path)
            return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        return None
    return tuple(one(path) for path in paths)


def _digest(paths: tuple[str, ...]) -> bytes:
    """Content hash of the watched files, so a ``touch`` is not a reload."""
    h = hashlib.sha256()
    for path in paths:
        data = b"\0missing"
        with contextlib.suppress(OSError), open(path, "rb") as fh:
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
