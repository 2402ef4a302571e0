"""THE semantic checks of a whole config, the same at start, by ``--config.check`` and on reload.

Parsing (config/) refuses what is malformed; these checks refuse what parses but cannot run:

- ``api.on_overload: refuse`` and a target set that needs more than the budget;
- the registration API enabled without authentication (bearer token or basic-auth users);
- a registration bearer token file that cannot be read or is empty;
- credentials that cannot be found or read (files that do not exist, none at all), for the
  implicit account or for each entry of ``accounts:``;
- a ``coordination.password_file`` (or TLS file) that cannot be read or is empty;
- callback signature key files (``webhook.key_file``, ``apps.<id>.callback_key_file``) that
  cannot be read or do not hold a TRTC key (1-32 letters and digits).

Every problem is collected in one :class:`~trtc_exporter.errors.Errors`, so one run lists them
all (one line each, field path first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from trtc_exporter.api.credentials import CredentialProvider, CredentialsError, resolve
from trtc_exporter.config.coordination import read_password
from trtc_exporter.config.model import Config
from trtc_exporter.errors import ConfigError, Errors
from trtc_exporter.generations import ALL_REGIONS
from trtc_exporter.polling.planning import budget_rates, plan
from trtc_exporter.secret import Secret
from trtc_exporter.targets.sources import read_bearer_token
from trtc_exporter.webhook.keys import KeyRing, load_keyring

log = logging.getLogger("trtc_exporter.checks")
REGISTRATION_AUTH = ("registration.enabled needs registration.bearer_token_file, or "
                     "basic_auth_users in --web.config.file")


@dataclass(frozen=True)
class Checked:
    """A config that passed every check, with what the checks had to open to prove it."""

    config: Config
    credentials: CredentialProvider
    bearer_token: Secret | None
    accounts: dict[str, CredentialProvider] = field(default_factory=dict)
    """The credential source of every account, by name ("" for the implicit one)."""
    redis_password: Secret | None = None
    keyring: KeyRing = field(default_factory=KeyRing)


def check_overload(config: Config, errors: Errors) -> None:
    """With api.on_overload: refuse, one line per action whose targets need more than the budget."""
    if config.api.on_overload != "refuse":
        return
    errors.extend(f"api.on_overload: refuse: {p.summary()}"
                  for p in plan(config, config.targets, budget_rates(config)) if p.stretch > 1)


def _warn_extra_regions(config: Config) -> None:
    """One warning per api.extra_regions entry: unlisted regions are the operator's call."""
    for region in sorted(config.api.extra_regions):
        if region in ALL_REGIONS:
            log.warning("api.extra_regions: %s is already a known region; the entry can go",
                        region)
        else:
            log.warning("api.extra_regions: %s is not in the documented region lists; targets "
                        "there are polled as configured (the API answers UnsupportedRegion if "
                        "it does not serve it)", region)


def check(config: Config, *, basic_auth: bool,
          credentials: Callable[[Config], CredentialProvider] = resolve) -> Checked:
    """Apply every check; raises ConfigError listing all problems.

    ``basic_auth`` says whether the web config in force has basic-auth users (they protect the
    registration API when no bearer token is set). ``credentials`` resolves the credential
    chain (injectable for tests); its failure is reported as a problem like the others.
    """
    _warn_extra_regions(config)
    errors = Errors()
    check_overload(config, errors)
    token = None
    try:
        token = read_bearer_token(config.registration.bearer_token_file)
    except ConfigError as exc:
        errors.extend(exc.lines)
    keyring = None
    try:
        keyring = load_keyring(config.webhook.key_file, config.callback_key_files(),
                               config.webhook.allow_unsigned)
    except ConfigError as exc:
        errors.extend(exc.lines)
    if config.registration.enabled and config.registration.bearer_token_file is None and \
            not basic_auth:
        errors.append(REGISTRATION_AUTH)
    password = None
    try:
        password = read_password(config.coordination.password_file)
    except ConfigError as exc:
        errors.extend(exc.lines)
    check_tls_files(config, errors)
    providers = _providers(config, credentials, errors)
    if errors.count or not providers or keyring is None:
        raise ConfigError(errors.report())
    first = providers[config.account_names[0]]
    return Checked(config, first, token, providers, password, keyring)


def _providers(config: Config, credentials: Callable[[Config], CredentialProvider],
               errors: Errors) -> dict[str, CredentialProvider]:
    """Resolve the credential chain of the implicit account, or of each listed account (its
    ``credentials`` block in place of ``api.credentials``); failures become problems."""
    providers = {}
    if not config.accounts:
        try:
            providers[""] = credentials(config)
        except CredentialsError as exc:
            errors.append(str(exc))
        return providers
    for index, account in enumerate(config.accounts):
        own = replace(config, api=replace(config.api, credentials=account.credentials))
        try:
            providers[account.name] = credentials(own)
        except CredentialsError as exc:
            text = str(exc).replace("api.credentials", f"accounts[{index}].credentials")
            errors.append(f"accounts[{index}] ({account.name}): {text}")
    return providers


def check_tls_files(config: Config, errors: Errors) -> None:
    """One line per coordination TLS file (CA, client certificate and key) that is unreadable."""
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(config.coordination, key)
        if path is None:
            continue
        try:
            Path(path).read_bytes()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            errors.add(f"coordination.{key}", f"cannot read {path}: {reason}")
