"""Where API keys come from: config files, environment, profile file, then the CVM instance role.

The first source that has keys wins (:func:`resolve`). Explicit configuration beats ambient
settings, so ``api.credentials`` files come before the environment; after that the order is the
official SDK's (environment, profile file, CVM role). The CVM role is only probed when
``api.credentials.cvm_role`` is true (see :class:`~trtc_exporter.config.model.CredentialsConfig`).

Every provider returns :class:`Credentials` whose parts are :class:`Secret`, so nothing printable
ever holds a key. Files (key files and the profile file) are re-read when their inode, size, mtime
or ctime changes, so keys rotate without a restart; a failed re-read keeps the last good keys (an
exporter that loses its keys on a half-written file would go blind at the worst moment) and counts
the failure in ``refresh_failures``, which every provider has so that it can be exported.
"""

from __future__ import annotations

import configparser
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.config.model import Config, CredentialsConfig
from trtc_exporter.errors import show
from trtc_exporter.secret import Secret
from trtc_exporter.textfile import MAX_SECRET_BYTES, TextFileError, read_text

log = logging.getLogger("trtc_exporter.credentials")  # caller= stays as before

METADATA_URL = "http://metadata.tencentyun.com/latest/meta-data/cam/security-credentials/"
SYSTEM_PROFILE = Path("/etc/tencentcloud/credentials")
SOURCES = ("file", "env", "profile", "cvm_role", "demo")


class CredentialsError(Exception):
    """No usable credentials; the message names where we looked, never a value."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """One set of TencentCloud keys: SecretId, SecretKey (a :class:`Secret`) and an optional
    STS session token; ``repr`` never shows the key or the token."""

    secret_id: Secret
    secret_key: Secret
    token: Secret | None = None


class CredentialProvider(Protocol):
    """Hands out the current keys; ``source`` is one of :data:`SOURCES`."""

    source: str
    refresh_failures: int  # failed re-reads/refreshes since start (0 for static sources)

    def get(self) -> Credentials:
        """The current key pair (and token); raises CredentialsError when none can be had."""


def _check_sendable(value: str, what: str) -> None:
    """Keys travel in HTTP headers: anything but printable ASCII would fail every request."""
    if not (value.isascii() and value.isprintable()):
        raise CredentialsError(f"{what} contains a character that is not printable ASCII")


def _clean(value: str, what: str) -> Secret:
    value = value.strip()
    if not value:
        raise CredentialsError(f"{what} is empty")
    _check_sendable(value, what)
    return Secret(value)


class StaticProvider:
    """Keys fixed at start: the environment, or the demo's generated keys."""

    refresh_failures = 0

    def __init__(self, credentials: Credentials, source: str) -> None:
        self._credentials = credentials
        self.source = source

    def get(self) -> Credentials:
        """The key pair given at construction (config, environment or files)."""
        return self._credentials


class _ReloadingProvider:
    """Caches keys read from files; re-reads when a file's fingerprint changes.

    A change that cannot be read (file gone, empty, half written) is counted and logged once;
    the last good keys stay in use until a later change reads cleanly.
    """

    source = "file"

    def __init__(self, paths: Sequence[Path]) -> None:
        self._paths = tuple(paths)
        self._lock = threading.Lock()
        self.refresh_failures = 0
        self._failed: object = None
        self._stamp = self._observe()
        self._credentials = self._load()  # raises at start: a missing file is a config error

    def _load(self) -> Credentials:
        raise NotImplementedError

    def _observe(self) -> object:
        try:
            return tuple((s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns)
                         for s in (os.stat(p) for p in self._paths))
        except OSError as exc:
            return ("unreadable", exc.filename, exc.errno)
        except ValueError:  # a NUL in a path: _load reports it
            return ("invalid path",)

    def get(self) -> Credentials:
        with self._lock:
            stamp = self._observe()
            if stamp != self._stamp and stamp != self._failed:
                self._reload(stamp)
            return self._credentials

    def _reload(self, stamp: object) -> None:
        try:
            credentials = self._load()
        except CredentialsError as exc:
            self._failed = stamp
            self.refresh_failures += 1
            log.warning("%s credentials changed but could not be re-read, keeping the last "
                        "keys: %s", self.source, exc)
            return
        self._credentials, self._stamp, self._failed = credentials, stamp, None
        log.info("%s credentials changed; new keys loaded", self.source)


def _read(path: Path) -> str:
    try:
        return read_text(str(path), MAX_SECRET_BYTES)
    except TextFileError as exc:
        name = repr(str(path)) if "\x00" in str(path) else str(path)
        raise CredentialsError(f"cannot read credentials file {name}: {exc}") from None


class FileProvider(_ReloadingProvider):
    """One file per value (``secret_id_file``, ``secret_key_file``, optional ``token_file``)."""

    source = "file"

    def __init__(self, id_file: str | Path, key_file: str | Path,
                 token_file: str | Path | None = None) -> None:
        self._token_file = Path(token_file) if token_file else None
        files = [Path(id_file), Path(key_file)]
        super().__init__(files + ([self._token_file] if self._token_file else []))

    def _load(self) -> Credentials:
        values = [_read(p) for p in self._paths]
        id_path, key_path = self._paths[0], self._paths[1]
        return Credentials(
            secret_id=_clean(values[0], f"secret_id_file {id_path}"),
            secret_key=_clean(values[1], f"secret_key_file {key_path}"),
            token=_clean(values[2], f"token_file {self._token_file}") if len(values) > 2 else None,
        )


def _parse_profile(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(_read(path), source=str(path))
    except configparser.Error as exc:
        raise CredentialsError(f"cannot parse profile file {path}: {type(exc).__name__}") from None
    return parser


class ProfileProvider(_ReloadingProvider):
    """The SDK's INI profile file (keys ``secret_id``, ``secret_key``), one section of it."""

    source = "profile"

    def __init__(self, path: str | Path, section: str = "default") -> None:
        self.path, self.section = Path(path), section
        super().__init__([self.path])

    def _load(self) -> Credentials:
        parser = _parse_profile(self.path)
        if not parser.has_section(self.section):
            raise CredentialsError(f"profile file {self.path} has no section [{self.section}]")
        where = f"profile file {self.path} [{self.section}]"
        return Credentials(
            secret_id=_clean(parser.get(self.section, "secret_id", fallback=""),
                             f"{where} secret_id"),
            secret_key=_clean(parser.get(self.section, "secret_key", fallback=""),
                              f"{where} secret_key"),
        )


def from_environment(env: Mapping[str, str]) -> StaticProvider | None:
    """``TENCENTCLOUD_SECRET_ID`` + ``_SECRET_KEY`` (non-empty); ``_SESSION_TOKEN`` optional."""
    secret_id = env.get("TENCENTCLOUD_SECRET_ID", "").strip()
    secret_key = env.get("TENCENTCLOUD_SECRET_KEY", "").strip()
    if not (secret_id and secret_key):
        return None
    token = env.get("TENCENTCLOUD_SESSION_TOKEN", "").strip()
    for name, value in (("TENCENTCLOUD_SECRET_ID", secret_id),
                        ("TENCENTCLOUD_SECRET_KEY", secret_key),
                        ("TENCENTCLOUD_SESSION_TOKEN", token)):
        if value:
            _check_sendable(value, name)
    creds = Credentials(Secret(secret_id), Secret(secret_key), Secret(token) if token else None)
    return StaticProvider(creds, "env")


def profile_paths(home: Path, system_profile: Path | None = SYSTEM_PROFILE) -> list[Path]:
    """Where the profile file is looked for, in order."""
    paths = [home / ".tencentcloud" / "credentials"]
    return paths + ([system_profile] if system_profile is not None else [])


def from_profile(env: Mapping[str, str], home: Path,
                 system_profile: Path | None = SYSTEM_PROFILE) -> ProfileProvider | None:
    """The first profile file that has the section ``TENCENTCLOUD_PROFILE`` (default ``default``).

    A file that exists but cannot be parsed, or whose section lacks a key, is an error rather
    than a reason to fall through to the next source.
    """
    section = env.get("TENCENTCLOUD_PROFILE", "").strip() or "default"
    for path in profile_paths(home, system_profile):
        if path.is_file() and _parse_profile(path).has_section(section):
            return ProfileProvider(path, section)
    return None


def _metadata_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # the metadata address is link-local: never through a proxy
    return session


class CvmRoleProvider:
    """Temporary keys of the CVM instance role, from the metadata service, refreshed in time.

    ``GET <base>`` names the role, ``GET <base><role>`` returns ``{Code: "Success", TmpSecretId,
    TmpSecretKey, Token, ExpiredTime}``. Keys are refreshed once fewer than ``refresh_margin``
    seconds remain. A failed refresh never raises: the current keys stay, ``refresh_failures``
    grows, a warning is logged (no key material), and the next attempt waits ``retry_interval``.
    The first fetch, at construction, raises CredentialsError.
    """

    source = "cvm_role"

    def __init__(self, clock: Clock | None = None, session: requests.Session | None = None, *,
                 base_url: str = METADATA_URL, timeout: float = 1.0,
                 refresh_margin: float = 300.0, retry_interval: float = 10.0) -> None:
        self._clock = clock or SYSTEM_CLOCK
        self._session = session or _metadata_session()
        self._base = base_url if base_url.endswith("/") else base_url + "/"
        self._timeout, self._margin, self._retry = timeout, refresh_margin, retry_interval
        self._lock = threading.Lock()
        self.refresh_failures = 0
        self.role: str | None = None
        self._credentials, self.expires_at = self._fetch()
        self._refresh_at = self._next_refresh()

    def get(self) -> Credentials:
        """The role's temporary keys, refreshed by one caller once the refresh time has passed
        (the others keep the current keys meanwhile, so a slow metadata service blocks no poll)."""
        if self._clock.time() >= self._refresh_at and self._lock.acquire(blocking=False):
            try:  # one thread refreshes; the others keep using the current keys meanwhile
                if self._clock.time() >= self._refresh_at:
                    self._refresh()
            finally:
                self._lock.release()
        return self._credentials

    def _next_refresh(self) -> float:
        return max(self.expires_at - self._margin, self._clock.time() + self._retry)

    def _refresh(self) -> None:
        try:
            self._credentials, self.expires_at = self._fetch()
        except Exception as exc:  # never fail hard here: a poll with the old keys beats none
            if not isinstance(exc, CredentialsError):
                exc = CredentialsError(f"unexpected {type(exc).__name__}")
            self.refresh_failures += 1
            self.role = None  # the instance's role may have been replaced: ask again next time
            self._refresh_at = self._clock.time() + self._retry
            log.warning("CVM role credentials refresh failed, keeping the current keys "
                        "(they expire in %.0fs): %s", self.expires_at - self._clock.time(), exc)
            return
        self._refresh_at = self._next_refresh()
        log.info("CVM role credentials refreshed for role %s", self.role)

    def _fetch(self) -> tuple[Credentials, float]:
        role = self.role or self._role_name()
        doc = _json(self._request(self._base + quote(role, safe=""), role), f"role {role!r}")
        if not isinstance(doc, dict) or doc.get("Code") != "Success":
            code = doc.get("Code") if isinstance(doc, dict) else None
            raise CredentialsError(f"metadata service returned Code {show(code)} "
                                   f"for role {role!r}")
        expired = _expiry(doc.get("ExpiredTime"), role)
        credentials = Credentials(*(_field(doc, name, role)
                                    for name in ("TmpSecretId", "TmpSecretKey", "Token")))
        self.role = role
        return credentials, expired

    def _role_name(self) -> str:
        lines = self._request(self._base, "").text.split()
        if not lines:
            raise CredentialsError("metadata service names no CAM role for this instance")
        return lines[0]

    def _request(self, url: str, role: str) -> requests.Response:
        what = f"role {role!r}" if role else "the role name"
        try:
            response = self._session.get(url, timeout=self._timeout)
        except requests.RequestException as exc:
            raise CredentialsError(f"metadata service unreachable asking for {what}: "
                                   f"{type(exc).__name__}") from None
        if response.status_code != 200:
            raise CredentialsError(f"metadata service answered HTTP {response.status_code} "
                                   f"for {what}")
        return response


def _json(response: requests.Response, what: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise CredentialsError(f"metadata service answer for {what} is not JSON") from None


def _expiry(value: object, role: str) -> float:
    """ExpiredTime (Unix seconds) as a float; anything else is a CredentialsError."""
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            seconds = math.inf
        if math.isfinite(seconds):
            return seconds
    raise CredentialsError(f"metadata service answer for role {role!r} lacks ExpiredTime")


def _field(doc: Mapping[str, Any], name: str, role: str) -> Secret:
    value = doc.get(name)
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(f"metadata service answer for role {role!r} lacks {name}")
    _check_sendable(value.strip(), f"metadata service {name} of role {role!r}")
    return Secret(value.strip())


def resolve(config: CredentialsConfig | Config, env: Mapping[str, str] | None = None,
            home: Path | None = None, clock: Clock | None = None,
            session: requests.Session | None = None, *,
            system_profile: Path | None = SYSTEM_PROFILE,
            metadata_url: str = METADATA_URL) -> CredentialProvider:
    """Pick the first source that has keys: files, environment, profile file, CVM role.

    ``config`` is ``config.api.credentials`` (or the whole Config). The CVM role is tried only
    when ``cvm_role`` is true. Raises CredentialsError at start, so a missing key is reported
    before the first poll; the message says where we looked and never contains a value.
    """
    creds = config.api.credentials if isinstance(config, Config) else config
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if creds.secret_id_file or creds.secret_key_file:
        if not (creds.secret_id_file and creds.secret_key_file):
            raise CredentialsError("api.credentials: secret_id_file and secret_key_file "
                                   "must be set together")
        return FileProvider(creds.secret_id_file, creds.secret_key_file, creds.token_file)
    provider: CredentialProvider | None = (from_environment(env)
                                           or from_profile(env, home, system_profile))
    if provider is not None:
        return provider
    if creds.cvm_role:
        try:
            return CvmRoleProvider(clock, session, base_url=metadata_url)
        except CredentialsError as exc:
            raise CredentialsError(f"{_nothing_found(env, home, system_profile)}; "
                                   f"CVM role: {exc}") from None
    raise CredentialsError(_nothing_found(env, home, system_profile)
                           + ", or set api.credentials.cvm_role: true on a CVM"
                           + " (or run with --demo)")


def _nothing_found(env: Mapping[str, str], home: Path, system_profile: Path | None) -> str:
    section = env.get("TENCENTCLOUD_PROFILE", "").strip() or "default"
    paths = " or ".join(str(p) for p in profile_paths(home, system_profile))
    hint = ""
    for have, lack in (("ID", "KEY"), ("KEY", "ID")):
        if env.get(f"TENCENTCLOUD_SECRET_{have}", "").strip() and not env.get(
                f"TENCENTCLOUD_SECRET_{lack}", "").strip():
            hint = f" (TENCENTCLOUD_SECRET_{have} is set but TENCENTCLOUD_SECRET_{lack} is not)"
    return ("no TencentCloud credentials: set api.credentials.secret_id_file and "
            "secret_key_file, or TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY" + hint
            + f", or a [{section}] section with secret_id and secret_key in {paths}")
