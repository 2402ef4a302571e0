"""Callback signature keys: read from files, validated, held as :class:`Secret`.

A key is "up to 32 characters ... uppercase and lowercase letters and digits" (doc 66149 and doc
54912, "Configuration Information"). Files are read by :mod:`trtc_exporter.textfile`, like every
other secret file: UTF-8 with or without a BOM, surrounding whitespace and line ends (LF or CRLF,
as editors and ``echo`` leave them) removed, UTF-16 named as such; anything else that is not a
letter or digit is an error naming the config field, never showing the file's content.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from trtc_exporter.errors import Errors
from trtc_exporter.secret import Secret
from trtc_exporter.textfile import TextFileError, UnreadableFile, read_secret

KEY_PATTERN = re.compile(r"[A-Za-z0-9]{1,32}")
_MAX_FILE_BYTES = 4096


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the field and the file, not the key."""


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Which key verifies a callback of which SdkAppId.

    ``per_app`` (``apps.<id>.callback_key_file``) wins over ``default`` (``webhook.key_file``).
    """

    default: Secret | None = None
    per_app: Mapping[int, Secret] = field(default_factory=dict)
    allow_unsigned: bool = False

    def key_for(self, sdk_app_id: int) -> Secret | None:
        """The key for ``sdk_app_id``: its own, else the default, else None (unsigned)."""
        return self.per_app.get(sdk_app_id, self.default)


def read_key(path: str, field_path: str) -> Secret:
    """Read and validate one key file; raises :class:`KeyFileError`."""
    where = f"{field_path}: {path}"
    try:
        key = read_secret(path, _MAX_FILE_BYTES)
    except UnreadableFile as exc:
        raise KeyFileError(f"{where}: cannot read: {exc}") from None
    except TextFileError as exc:
        raise KeyFileError(f"{where}: {exc}") from None
    if not key:
        raise KeyFileError(f"{where}: is empty")
    if not KEY_PATTERN.fullmatch(key):
        raise KeyFileError(f"{where}: the key must be 1-32 letters and digits (TRTC console "
                           f"rule); the file holds something else")
    return Secret(key)


def load_keyring(default_file: str | None, app_files: Mapping[int, str],
                 allow_unsigned: bool) -> KeyRing:
    """Read every configured key file; every unusable one is reported at once (ConfigError)."""
    errors = Errors()
    default = _try(default_file, "webhook.key_file", errors) if default_file else None
    per_app = {}
    for app, path in sorted(app_files.items()):
        key = _try(path, f"apps.{app}.callback_key_file", errors)
        if key is not None:
            per_app[app] = key
    errors.raise_if_any()
    return KeyRing(default, per_app, allow_unsigned)


def _try(path: str, field_path: str, errors: Errors) -> Secret | None:
    try:
        return read_key(path, field_path)
    except KeyFileError as exc:
        field_name, _, problem = str(exc).partition(": ")
        errors.add(field_name, problem)
        return None
