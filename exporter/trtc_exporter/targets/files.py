"""Target files (file_sd style): YAML or JSON lists of targets, re-read when they change.

Every ``refresh_interval`` on the injected clock each matching file is read and hashed; it is
parsed again only when its content changed (so a rewrite within one mtime tick, same size, is
still seen). A broken file keeps its last good contents in force and is reported; other files are
unaffected. The table of files is swapped whole, never edited in place, so a scrape reading
:attr:`TargetFiles.files` from another thread always sees a consistent table.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import threading
from dataclasses import dataclass, field, replace

from trtc_exporter.clock import Clock
from trtc_exporter.config.model import parse_targets
from trtc_exporter.errors import ConfigError, Errors, counted
from trtc_exporter.jsonload import load_json
from trtc_exporter.target import Target
from trtc_exporter.textfile import TextFileError, decode, read_bytes
from trtc_exporter.yamlload import YamlError, load_yaml, outline

log = logging.getLogger("trtc_exporter.targetfiles")  # caller= stays as before


@dataclass(frozen=True, slots=True)
class FileState:
    """What the watcher knows about one target file: the digest of its last read, its last good
    targets, and whether the last read succeeded (with the error if not)."""

    digest: str = ""  # of the last content read, good or broken
    targets: tuple[Target, ...] = ()  # the last good contents
    ok: bool = True
    error: str = ""


def parse_target_file(path: str, text: str, default_region: str,
                      max_entries: int = 10_000,
                      extra_regions: frozenset[str] = frozenset()) -> tuple[Target, ...]:
    """Parse one file's text; JSON by extension, else YAML. Raises ConfigError naming the path.

    A file of more than ``max_entries`` (the config's max_targets) is refused whole before any
    entry is built: a YAML file is counted by streaming events first, so 100 000 entries cost a
    fraction of a second and no memory for entries that would be refused anyway.
    """
    kind = "JSON" if path.endswith(".json") else "YAML"
    too_many = ConfigError([f"{path}: more than {counted(max_entries, 'entry', 'entries')} "
                            f"(max_targets); "
                            f"the file is refused"])
    if kind == "YAML" and outline(text, None, max_entries).items > max_entries:
        raise too_many
    try:
        raw = load_json(text) if kind == "JSON" else load_yaml(text, keep_text=True)
    except YamlError as exc:
        raise ConfigError([f"{path}: not valid {kind}: {exc.summary}"]) from None
    except ValueError as exc:
        first = (str(exc).splitlines() or ["unreadable"])[0]
        raise ConfigError([f"{path}: not valid {kind}: {first}"]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid {kind}: nested too deeply"]) from None
    if isinstance(raw, list) and len(raw) > max_entries:
        raise too_many
    errors = Errors()
    targets = parse_targets([] if raw is None else raw, path, errors, default_region,
                            source="file", extra_regions=extra_regions)
    errors.raise_if_any()
    return targets


@dataclass(slots=True)
class TargetFiles:
    """Watches the configured globs; ``refresh()`` returns True when the target set changed."""

    patterns: tuple[str, ...]
    clock: Clock
    default_region: str = "ap-guangzhou"
    refresh_interval: float = 30.0
    max_entries: int = 10_000  # the config's max_targets: a longer file is refused whole
    extra_regions: frozenset[str] = frozenset()  # api.extra_regions
    files: dict[str, FileState] = field(default_factory=dict)
    _next_check: float = field(default=float("-inf"))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def targets(self) -> list[Target]:
        """Every target of every watched file, files in name order."""
        files = self.files
        return [t for name in sorted(files) for t in files[name].targets]

    def by_file(self) -> dict[str, tuple[Target, ...]]:
        """Each watched file's last good targets, by path in name order: the very same tuple as
        long as the file's content is unchanged (a broken file keeps its last good one)."""
        files = self.files
        return {name: files[name].targets for name in sorted(files)}

    def due(self) -> bool:
        """True when the refresh interval has passed since the last check (monotonic clock)."""
        return self.clock.monotonic() >= self._next_check

    def refresh(self, force: bool = False) -> bool:
        """Re-read changed files (re-parse all of them when forced, e.g. on reload)."""
        with self._lock:
            if not force and not self.due():
                return False
            self._next_check = self.clock.monotonic() + self.refresh_interval
            paths = sorted({p for pattern in self.patterns for p in glob.glob(pattern)})
            old, new = self.files, {}
            changed = False
            for gone in sorted(old.keys() - set(paths)):
                log.info("target file %s disappeared; its targets are removed", gone)
                changed |= bool(old[gone].targets)
            for path in paths:
                new[path] = self._load(path, old.get(path, FileState()), force)
                changed |= new[path].targets != old.get(path, FileState()).targets
            self.files = new
            return changed

    def _load(self, path: str, state: FileState, force: bool) -> FileState:
        try:
            data = read_bytes(path)
        except TextFileError as exc:
            return self._fail(path, state, "", f"cannot read: {exc}")
        digest = hashlib.sha256(data).hexdigest()
        if digest == state.digest and not force:
            return state
        try:
            text = decode(data)
        except TextFileError as exc:
            return self._fail(path, state, digest, f"{path}: {exc}")
        try:
            targets = parse_target_file(path, text, self.default_region, self.max_entries,
                                        self.extra_regions)
        except ConfigError as exc:
            return self._fail(path, state, digest, "; ".join(exc.lines))
        if not state.ok or targets != state.targets or not state.digest:
            log.info("target file %s loaded: %s", path, counted(len(targets), "target"))
        return FileState(digest, targets, True, "")

    @staticmethod
    def _fail(path: str, state: FileState, digest: str, error: str) -> FileState:
        if state.error != error:
            log.error("target file %s is broken, keeping its last good targets: %s", path, error)
        return replace(state, digest=digest, ok=False, error=error)
