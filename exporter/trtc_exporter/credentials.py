"""Where API keys come from, in the official SDK's order, with rotation by re-reading files.

Every provider returns :class:`Credentials` whose parts are :class:`Secret`, so nothing printable
ever holds a key. Files are re-read when their mtime or size changes, so keys rotate without a
restart; a failed re-read keeps the last good keys (an exporter that loses its keys on a
half-written file would go blind at the worst moment).
"""

from __future__ import annotations

import configparser
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trtc_exporter.config import CredentialsConfig
from trtc_exporter.secret import Secret

log = logging.getLogger(__name__)


class CredentialsError(Exception):
    """No usable credentials; the message names where we looked, never a value."""


@dataclass(frozen=True, slots=True)
class Credentials:
    secret_id: Secret
    secret_key: Secret
    token: Secret | None = None


class CredentialProvider(Protocol):
    source: str

    def get(self) -> Credentials: ...


def _clean(value: str, what: str) -> Secret:
    value = value.strip()
    if not value:
        raise CredentialsError(f"{what} is empty")
    return Secret(value)


class StaticProvider:
    """Keys fixed at start: the environment, or the demo's generated keys."""

    def __init__(self, credentials: Credentials, source: str) -> None:
        self._credentials = credentials
        self.source = source

    def get(self) -> Credentials:
        return self._credentials


class FileProvider:
    """Reads one file per value and re-reads them when they change (key rotation)."""

    source = "file"

    def __init__(self, id_file: str, key_file: str, token_file: str | None = None) -> None:
        self._paths = [p for p in (id_file, key_file, token_file) if p]
        self._has_token = token_file is not None
        self._lock = threading.Lock()
        self._stamp: tuple[tuple[int, int], ...] | None = None
        self._credentials = self._read()  # raises at start: a missing file is a config error

    def _stat(self) -> tuple[tuple[int, int], ...]:
        return tuple((s.st_mtime_ns, s.st_size) for s in (os.stat(p) for p in self._paths))

    def _read(self) -> Credentials:
        try:
            stamp = self._stat()
            values = [Path(p).read_text(encoding="utf-8") for p in self._paths]
        except OSError as exc:
            raise CredentialsError(f"cannot read credentials file {exc.filename}: "
                                   f"{exc.strerror}") from None
        creds = Credentials(
            secret_id=_clean(values[0], f"secret_id_file {self._paths[0]}"),
            secret_key=_clean(values[1], f"secret_key_file {self._paths[1]}"),
            token=_clean(values[2], f"token_file {self._paths[2]}") if self._has_token else None,
        )
        self._stamp = stamp
        return creds

    def get(self) -> Credentials:
        with self._lock:
            try:
                if self._stat() != self._stamp:
                    self._credentials = self._read()
                    log.info("credentials files changed; new keys loaded")
            except (OSError, CredentialsError) as exc:
                log.warning("credentials files could not be re-read, keeping the last keys: %s",
                            exc)
        return self._credentials


def from_environment(env: Mapping[str, str]) -> StaticProvider | None:
    secret_id = env.get("TENCENTCLOUD_SECRET_ID", "").strip()
    secret_key = env.get("TENCENTCLOUD_SECRET_KEY", "").strip()
    if not (secret_id and secret_key):
        return None
    token = env.get("TENCENTCLOUD_SESSION_TOKEN", "").strip()
    creds = Credentials(Secret(secret_id), Secret(secret_key), Secret(token) if token else None)
    return StaticProvider(creds, "env")


def from_profile(env: Mapping[str, str], home: Path) -> StaticProvider | None:
    """The SDK's profile file: ``~/.tencentcloud/credentials`` then ``/etc/tencentcloud/…``."""
    section = env.get("TENCENTCLOUD_PROFILE", "default")
    for path in (home / ".tencentcloud" / "credentials", Path("/etc/tencentcloud/credentials")):
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path, encoding="utf-8")
        except (OSError, configparser.Error) as exc:
            raise CredentialsError(f"cannot parse profile file {path}: "
                                   f"{type(exc).__name__}") from None
        if not parser.has_section(section):
            continue
        secret_id = parser.get(section, "secret_id", fallback="").strip()
        secret_key = parser.get(section, "secret_key", fallback="").strip()
        if secret_id and secret_key:
            return StaticProvider(Credentials(Secret(secret_id), Secret(secret_key)), "profile")
    return None


def resolve(config: CredentialsConfig, env: Mapping[str, str] | None = None,
            home: Path | None = None) -> CredentialProvider:
    """Pick the first source that has keys: config files, environment, profile file.

    Raises CredentialsError at start, so a missing key is reported before the first poll.
    """
    env = os.environ if env is None else env
    if config.secret_id_file or config.secret_key_file:
        if not (config.secret_id_file and config.secret_key_file):
            raise CredentialsError("api.credentials: secret_id_file and secret_key_file "
                                   "must be set together")
        return FileProvider(config.secret_id_file, config.secret_key_file, config.token_file)
    provider = from_environment(env) or from_profile(env, home or Path.home())
    if provider is None:
        raise CredentialsError(
            "no TencentCloud credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, "
            "or api.credentials.secret_id_file/secret_key_file, or a profile in "
            "~/.tencentcloud/credentials (or run with --demo)")
    return provider
