"""Target files (file_sd style): YAML or JSON lists of targets, re-read when they change.

A file is re-read only when its mtime, size or content hash changed, checked at most every
``refresh_interval`` on the injected clock. A broken file keeps its last good contents in force
and is reported; other files are unaffected.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field

import yaml

from trtc_exporter.clock import Clock
from trtc_exporter.config import parse_targets
from trtc_exporter.target import Target
from trtc_exporter.validation import ConfigError, Errors

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FileState:
    stamp: tuple[int, int] = (0, 0)
    digest: str = ""
    targets: tuple[Target, ...] = ()
    ok: bool = True
    error: str = ""


def parse_target_file(path: str, text: str, default_region: str) -> tuple[Target, ...]:
    """Parse one file's text; JSON by extension, else YAML. Raises ConfigError naming the path."""
    try:
        raw = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError([f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: "
                           f"{str(exc).splitlines()[0]}"]) from None
    errors = Errors()
    targets = parse_targets([] if raw is None else raw, path, errors, default_region,
                            source="file")
    errors.raise_if_any()
    return targets


@dataclass(slots=True)
class TargetFiles:
    """Watches the configured globs; ``refresh()`` returns True when the target set changed."""

    patterns: tuple[str, ...]
    clock: Clock
    default_region: str = "ap-guangzhou"
    refresh_interval: float = 30.0
    files: dict[str, FileState] = field(default_factory=dict)
    _next_check: float = field(default=float("-inf"))

    def targets(self) -> list[Target]:
        return [t for name in sorted(self.files) for t in self.files[name].targets]

    def due(self) -> bool:
        return self.clock.monotonic() >= self._next_check

    def refresh(self, force: bool = False) -> bool:
        """Re-read changed files (all of them when forced, e.g. on reload)."""
        if not force and not self.due():
            return False
        self._next_check = self.clock.monotonic() + self.refresh_interval
        paths = sorted({p for pattern in self.patterns for p in glob.glob(pattern)})
        changed = False
        for gone in set(self.files) - set(paths):
            del self.files[gone]
            log.info("target file %s disappeared; its targets are removed", gone)
            changed = True
        for path in paths:
            changed |= self._load(path, force)
        return changed

    def _load(self, path: str, force: bool) -> bool:
        state = self.files.setdefault(path, FileState())
        try:
            info = os.stat(path)
            stamp = (info.st_mtime_ns, info.st_size)
            if stamp == state.stamp and not force:
                return False
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            return self._fail(path, state, f"cannot read: {exc.strerror}")
        digest = hashlib.sha256(data).hexdigest()
        state.stamp = stamp
        if digest == state.digest and state.ok:
            return False
        try:
            targets = parse_target_file(path, data.decode("utf-8", "replace"), self.default_region)
        except ConfigError as exc:
            return self._fail(path, state, "; ".join(exc.lines))
        state.digest, state.targets, state.ok, state.error = digest, targets, True, ""
        log.info("target file %s loaded: %d targets", path, len(targets))
        return True

    def _fail(self, path: str, state: FileState, error: str) -> bool:
        if state.error != error:
            log.error("target file %s is broken, keeping its last good targets: %s", path, error)
        state.ok, state.error = False, error
        state.digest = ""
        return False
