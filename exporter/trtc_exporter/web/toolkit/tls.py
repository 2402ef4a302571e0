"""The ``tls_server_config`` half of the web config: TLS and mTLS settings into an ``SSLContext``.

Same keys, defaults and checks as the exporter-toolkit. Certificates, keys and CAs are loaded while
parsing, so a file that parses is a file that serves. Errors name the key the user wrote, never the
data (an inline key must not end up in a log). :mod:`trtc_exporter.web.toolkit.webconfig` is
the public surface; this module also holds the small key-checking helpers both halves share.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from trtc_exporter.errors import Errors

TLS = "tls_server_config"
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


@dataclass(frozen=True, slots=True)
class TLSServerConfig:
    """A ready ``SSLContext`` plus the post-handshake SAN allow-list (empty = any)."""

    context: ssl.SSLContext
    client_allowed_sans: frozenset[str] = frozenset()


def section(raw: object, path: str, keys: tuple[str, ...], errors: Errors,
            unknown: str = "unknown key") -> dict[str, object]:
    """The known keys of mapping ``raw`` at ``path``; every other key is an error."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        errors.append(f"{path or '(top level)'}: must be a mapping")
        return {}
    errors.extend(f"{path + '.' if path else ''}{key}: {unknown}" for key in raw if key not in keys)
    return {key: value for key, value in raw.items() if key in keys}


def get_list(sec: dict[str, object], key: str, errors: Errors) -> list[str]:
    """``tls_server_config.<key>`` as a list of strings ([] when unset or wrong)."""
    value = sec.get(key)
    if value is not None and (not isinstance(value, list)
                              or not all(isinstance(item, str) for item in value)):
        errors.append(f"{TLS}.{key}: must be a list of strings")
        return []
    return value or []


def get_bool(sec: dict[str, object], key: str, path: str, errors: Errors) -> bool:
    """``<path>.<key>`` as a boolean, true when unset."""
    value = sec.get(key, True)  # both booleans of the format default to true
    if not isinstance(value, bool):
        errors.append(f"{path}.{key}: must be true or false, got {value!r}")
        return True
    return value


def parse_tls(raw: object, base: str, errors: Errors,
              notes: list[str]) -> tuple[TLSServerConfig | None, tuple[str, ...]]:
    """The TLS section (None when absent or wrong) and the files it names, relative to ``base``.

    Problems are appended to ``errors`` and settings this server cannot honour to ``notes``.
    """
    n_errors = len(errors.lines)
    sec = section(raw, TLS, _TLS_KEYS, errors)
    raw_s = {key: sec.get(key) for key in _STR_KEYS}
    errors.extend(f"{TLS}.{k}: must be a string" for k, v in raw_s.items()
                  if not isinstance(v, str | None))  # never echo the value: it may be a key
    s = {key: value if isinstance(value, str) else "" for key, value in raw_s.items()}
    files = tuple(os.path.join(base, s[k]) for k in ("cert_file", "key_file", "client_ca_file")
                  if s[k])
    for inline, required in (("cert", True), ("key", True), ("client_ca", False)):
        if s[inline] and s[f"{inline}_file"]:
            errors.append(f"{TLS}.{inline}: set {inline} or {inline}_file, not both")
        elif required and sec and not (raw_s[inline] or raw_s[f"{inline}_file"]):
            errors.append(f"{TLS}.{inline}_file: required (or {inline} inline)")
    auth = s["client_auth_type"] = s["client_auth_type"] or "NoClientCert"
    sans = get_list(sec, "client_allowed_sans", errors)
    if auth not in _CLIENT_AUTH:
        errors.append(f'{TLS}.client_auth_type: unknown value "{auth}"; one of '
                      + ", ".join(k for k in _CLIENT_AUTH if k != "RequireClientCert"))
    elif auth == "NoClientCert" and (s["client_ca"] or s["client_ca_file"]):
        errors.append(f"{_key(s, 'client_ca')}: set, but client_auth_type is NoClientCert")
    elif sans and auth not in _SAN_AUTH:
        errors.append(f"{TLS}.client_allowed_sans: needs client_auth_type RequireAnyClientCert "
                      "or RequireAndVerifyClientCert")
    _check_lists(sec, s, errors, notes)
    if not sec or len(errors.lines) > n_errors:
        return None, files
    context = _build_context(s, sec, base, errors, notes)
    return (TLSServerConfig(context, frozenset(sans)) if context else None), files


def _check_lists(sec: dict[str, object], s: dict[str, str], errors: Errors,
                 notes: list[str]) -> None:
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        s[key] = s[key] or default
        if s[key] not in _VERSIONS:
            errors.append(f'{TLS}.{key}: unknown value "{s[key]}"; one of ' + ", ".join(_VERSIONS))
    get_bool(sec, "prefer_server_cipher_suites", TLS, errors)
    if _VERSIONS.get(s["min_version"], 0) > _VERSIONS.get(s["max_version"], 1 << 16):
        errors.append(f"{TLS}.max_version: lower than min_version")
    for key, known, what in (("cipher_suites", _CIPHERS, "cipher suite"),
                             ("curve_preferences", _CURVES, "curve")):
        errors.extend(f'{TLS}.{key}[{i}]: unknown {what} "{name}"'
                      for i, name in enumerate(get_list(sec, key, errors)) if name not in known)
    if sec.get("curve_preferences"):
        notes.append(f"{TLS}.curve_preferences: ignored; Python's ssl uses OpenSSL's defaults")
    if s["client_auth_type"] in ("RequestClientCert", *_SAN_AUTH[:2]):
        like = "NoClientCert" if s["client_auth_type"] == "RequestClientCert" else \
            "RequireAndVerifyClientCert"
        notes.append(f"{TLS}.client_auth_type: acts as {like} here (Python's ssl)")


def _build_context(s: dict[str, str], sec: dict[str, object], base: str, errors: Errors,
                   notes: list[str]) -> ssl.SSLContext | None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLS10/TLS11 are deprecated, but still the user's call
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = _VERSIONS[s["min_version"]]
        ctx.maximum_version = _VERSIONS[s["max_version"]]
    if get_bool(sec, "prefer_server_cipher_suites", TLS, errors):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    _set_ciphers(ctx, get_list(sec, "cipher_suites", errors), errors, notes)
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
                errors.append(
                    f"{_key(s, 'key')}: does not load with the certificate ({reason})")
    ctx.verify_mode = _CLIENT_AUTH[s["client_auth_type"]]
    if ctx.verify_mode != ssl.CERT_NONE:
        _load_client_cas(ctx, s, base, errors, notes)
    return None if errors.lines else ctx


def _set_ciphers(ctx: ssl.SSLContext, suites: list[str], errors: Errors,
                 notes: list[str]) -> None:
    wanted = [(go, _CIPHERS[go]) for go in suites if _CIPHERS.get(go, "-") != "-"]
    usable = [ossl for _, ossl in wanted if _openssl_has(ossl)]
    notes.extend(f'{TLS}.cipher_suites: "{go}" is not offered; this OpenSSL refuses it'
                 for go, ossl in wanted if not _openssl_has(ossl))
    if usable:
        ctx.set_ciphers(":".join(usable))
    elif wanted:
        errors.append(f"{TLS}.cipher_suites: none is available in {ssl.OPENSSL_VERSION}")
    elif suites and ctx.maximum_version < ssl.TLSVersion.TLSv1_3:
        errors.append(f"{TLS}.cipher_suites: lists only TLS 1.3 suites, but max_version < TLS13")
    elif suites:  # as in Go: without a TLS 1.2 suite no TLS 1.2 handshake can succeed
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        notes.append(f"{TLS}.cipher_suites: only TLS 1.3 suites listed; TLS 1.2 is off")


def _openssl_has(name: str) -> bool:
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
    except ssl.SSLError:
        return False
    return True


def _load_client_cas(ctx: ssl.SSLContext, s: dict[str, str], base: str, errors: Errors,
                     notes: list[str]) -> None:
    if not (s["client_ca"] or s["client_ca_file"]):  # Go then verifies against the system roots
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        notes.append(f"{TLS}.client_ca_file: not set; client certificates are checked against "
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
    return f"{TLS}.{name}_file" if s[f"{name}_file"] else f"{TLS}.{name}"


def _pem(s: dict[str, str], name: str, base: str, marker: bytes, errors: Errors) -> bytes | None:
    """The PEM bytes of ``name`` or ``name_file``; errors name the key, never the data."""
    written = s[f"{name}_file"]
    try:
        if written:
            with open(os.path.join(base, written), "rb") as fh:
                data = fh.read()
        else:
            data = s[name].encode("utf-8", "replace")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable file name"
        errors.append(f'{_key(s, name)}: cannot read "{written}": {reason}')
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
