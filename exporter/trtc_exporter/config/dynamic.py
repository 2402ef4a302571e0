"""Config blocks of the dynamic target sources: target files and the registration API.

Kept apart from ``config`` so each module stays small; ``config`` owns the top level and calls in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trtc_exporter.errors import Errors

_REGISTRATION = frozenset({"enabled", "db_path", "bearer_token_file", "default_ttl",
                           "allow_probe_registration", "probe_ttl"})
DEFAULT_DB_PATH = "data/registered-targets.db"


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """``POST /api/v1/targets`` and probe registration; off unless enabled."""

    enabled: bool = False
    db_path: str = DEFAULT_DB_PATH
    bearer_token_file: str | None = None
    default_ttl: float | None = None
    allow_probe_registration: bool = False
    probe_ttl: float = 3600.0


def parse_registration(raw: object, errors: Errors) -> RegistrationConfig:
    """The ``registration:`` block (registration API, SQLite store, TTLs); problems go to
    ``errors`` as ``registration.field: problem``."""
    reg = errors.mapping(raw, "registration", _REGISTRATION)
    p = "registration."
    db_path = _path(reg, "db_path", errors, DEFAULT_DB_PATH) or DEFAULT_DB_PATH
    token_file = _path(reg, "bearer_token_file", errors, None)
    default_ttl = errors.duration(reg, "default_ttl", p, 0.0) or None
    config = RegistrationConfig(
        enabled=errors.boolean(reg, "enabled", p, False),
        db_path=db_path,
        bearer_token_file=token_file or None,
        default_ttl=default_ttl,
        allow_probe_registration=errors.boolean(reg, "allow_probe_registration", p, False),
        probe_ttl=errors.duration(reg, "probe_ttl", p, 3600.0),
    )
    if config.allow_probe_registration and not config.enabled:
        errors.add(p + "allow_probe_registration", "needs registration.enabled: true")
    return config


def _path(reg: Mapping[str, Any], key: str, errors: Errors, default: str | None) -> str | None:
    """A file path: a non-empty string without NUL (which no file system accepts)."""
    value = errors.string(reg, key, "registration.", default)
    if value == "":
        errors.add(f"registration.{key}", "must not be empty")
        return default
    if value is not None and "\x00" in value:
        errors.add(f"registration.{key}", "must be a file path")
        return default
    return value


def parse_target_files(raw: object, errors: Errors) -> tuple[str, ...]:
    """The ``target_files:`` globs, as given; ``target_files[i]: …`` for an entry that is not a
    non-empty string."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.add("target_files", "must be a list of file globs")
        return ()
    globs = []
    for index, pattern in enumerate(raw):
        if not isinstance(pattern, str) or not pattern.strip() or "\x00" in pattern:
            errors.add(f"target_files[{index}]", "must be a non-empty file glob string")
            continue
        globs.append(pattern)
    return tuple(globs)
