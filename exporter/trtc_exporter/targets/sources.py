"""Where targets come from: the config, target files and the registration API, kept in one set.

The exporter asks :meth:`TargetSources.maintain` once a second whether the set changed (a target
file was edited, a registration expired); reloads call :meth:`apply_config`.
"""

from __future__ import annotations

import logging

from trtc_exporter.clock import Clock
from trtc_exporter.config.model import Config
from trtc_exporter.errors import ConfigError
from trtc_exporter.metrics import DropCounter, StorageErrors
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target
from trtc_exporter.targets.candidates import SetChange
from trtc_exporter.targets.files import TargetFiles
from trtc_exporter.targets.registrations import (
    Registered,
    RegistrationStore,
    RegistrationStoreError,
    Store,
)
from trtc_exporter.targets.targetset import TargetSet
from trtc_exporter.textfile import TextFileError, read_secret

log = logging.getLogger("trtc_exporter.sources")  # caller= stays as before


def read_bearer_token(path: str | None) -> Secret | None:
    """The registration API's bearer token; a missing or empty file is a config error."""
    if path is None:
        return None
    try:
        token = read_secret(path)
    except TextFileError as exc:
        raise ConfigError([f"registration.bearer_token_file: cannot read {path}: {exc}"]) from None
    if not token:
        raise ConfigError([f"registration.bearer_token_file: {path} is empty"])
    return Secret(token)


class TargetSources:
    """Where targets come from: config, target files and the registration store, merged."""

    def __init__(self, config: Config, clock: Clock, drops: DropCounter | None = None, *,
                 webhooks: bool = False, shared: Store | None = None,
                 faults: StorageErrors | None = None) -> None:
        """Open the registration store (RegistrationStoreError if unusable), read target files.

        ``drops`` counts unreadable database rows (reason ``stored_row``). ``webhooks``: the
        callback listener is on, so tasks it discovers (source ``webhook``) are persisted in the
        registration store even when the registration API is off. ``shared``: the store
        replicas share (coordination), used instead of SQLite for registrations and webhook
        discoveries alike. ``faults`` counts failed writes to the SQLite store.
        """
        self._clock = clock
        self._shared = shared
        self._drops = drops or DropCounter()
        self._faults = faults or StorageErrors()
        self._webhooks = webhooks
        registration = config.registration
        self.registrations = self._open(registration.db_path) if self._persists(config) else None
        self.bearer_token = read_bearer_token(registration.bearer_token_file)
        self.target_set = TargetSet(clock, config.max_targets)
        self.target_set.attach(self.registrations, self._dynamic_sources(config))
        self.files = self._watch(config)
        self.files.refresh(force=True)
        self._config = config

    def _open(self, path: str) -> Store:
        if self._shared is not None:
            return self._shared
        return RegistrationStore(path, self._drops, self._faults)

    def _persists(self, config: Config) -> bool:
        return config.registration.enabled or self._webhooks

    @staticmethod
    def _dynamic_sources(config: Config) -> frozenset[str]:
        """Stored targets in force: webhook discoveries, and API registrations when enabled."""
        return frozenset({"api", "webhook"} if config.registration.enabled else {"webhook"})

    def _watch(self, config: Config) -> TargetFiles:
        return TargetFiles(config.target_files, self._clock, config.api.region,
                           config.target_files_refresh_interval, config.max_targets,
                           config.api.extra_regions)

    def apply_config(self, config: Config) -> None:
        """On reload: new config targets, re-read every target file and the bearer token.

        Raises ConfigError, changing nothing, when the token file is unreadable or a newly
        enabled registration database cannot be opened. Turning registration off drops the
        registered targets from the set (they stay in the database, as after a restart).
        """
        old, new = self._config.registration, config.registration
        token = read_bearer_token(new.bearer_token_file)
        store = self.registrations
        persists = self._persists(config)
        if persists and store is None:
            try:
                store = self._open(new.db_path)
            except RegistrationStoreError as exc:
                raise ConfigError([str(exc)]) from None
        elif persists and new.db_path != old.db_path and self._shared is None:
            log.warning("registration.db_path changed; the new path takes effect on restart")
        self.bearer_token = token
        if not persists:
            store = None
        if store is not self.registrations or old.enabled != new.enabled:
            previous, self.registrations = self.registrations, store
            self.target_set.attach(store, self._dynamic_sources(config))
            if previous is not None and previous is not store:
                previous.close()
        if (config.target_files, config.target_files_refresh_interval, config.api.region,
                config.max_targets, config.api.extra_regions) != (
                self.files.patterns, self.files.refresh_interval, self.files.default_region,
                self.files.max_entries, self.files.extra_regions):
            self.files = self._watch(config)
        self.files.refresh(force=True)
        self.target_set.max_targets = config.max_targets
        self._config = config

    def maintain(self) -> SetChange:
        """Re-read changed target files when due, re-read a shared store another replica changed,
        expire registrations; how the merged set changed (false when it did not).

        A target-file edit alone is merged at once, piecewise (``TargetSet.update_files``: the
        cost of applying it follows the number of changed entries); anything else, or targets
        waiting beyond ``max_targets``, answers ``whole``: call :meth:`merged`.
        """
        self.files.refresh()
        whole = self.target_set.refresh()
        if self.target_set.expire() > 0 or whole:
            return SetChange(whole=True)
        return self.target_set.update_files(self.files.by_file())

    def register(self, targets: list[Target], ttl: float | None) -> list[Target]:
        """Add registrations (``ttl`` seconds, None for no expiry); returns the new ones.

        Raises TargetLimitError past ``max_targets`` and RegistrationStoreError when the store
        cannot be written.
        """
        return self.target_set.register(targets, ttl)

    def unregister(self, target_id: str) -> bool:
        """Remove the registration with this id (``Target.id``); False when there is none."""
        return self.target_set.unregister(target_id)

    def withdraw(self, target_id: str) -> list[Target] | None:
        """As :meth:`unregister`, returning the targets that left the merged set (None: no such
        registration); see :meth:`TargetSet.withdraw`."""
        return self.target_set.withdraw(target_id)

    @property
    def has_refusals(self) -> bool:
        """True while targets wait beyond ``max_targets``."""
        return self.target_set.has_refusals

    def registered(self, key: tuple[str, ...]) -> Registered | None:
        """The API registration of this identity (``Target.key``), if any."""
        return self.target_set.registered(key)

    def expiry_of(self, key: tuple[str, ...]) -> float | None:
        """Wall-clock seconds when this identity's registration expires; None for never/none."""
        return self.target_set.expiry_of(key)

    def changes(self) -> dict[tuple[str, str], int]:
        """Counts of target-set changes by (change, source), e.g. ("added", "config")."""
        return dict(self.target_set.changes)

    def file_status(self) -> dict[str, bool]:
        """Whether the last load of each target file succeeded, by file path."""
        return {path: state.ok for path, state in self.files.files.items()}

    def merged(self) -> list[Target]:
        """Config, file and registered targets merged (config wins, then files, then API)."""
        self.target_set.set_config(self._config.targets)
        self.target_set.set_files(self.files.by_file())
        return self.target_set.merged()

    def close(self) -> None:
        """Close the registration store, if open."""
        if self.registrations is not None:
            self.registrations.close()
