"""The ``accounts:`` list: several Tencent accounts in one exporter, each with its own budget.

Each entry has a ``name`` (referred to by targets, shown in the ``account`` label), a
``credentials`` block shaped exactly like ``api.credentials`` (so ``credentials.resolve`` takes it
unchanged) and a ``rate_limit`` in requests/s per action. An absent list means one implicit
account, as before. :func:`parse_credentials` takes the field path as a parameter:
``api.credentials`` and every ``accounts[i].credentials`` are parsed by it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trtc_exporter.errors import Errors, show

_ACCOUNT = frozenset({"name", "credentials", "rate_limit"})
_CREDS = frozenset({"secret_id_file", "secret_key_file", "token_file", "cvm_role"})
DEFAULT_RATE_LIMIT = 20.0
MAX_ACCOUNT_NAME = 64


@dataclass(frozen=True, slots=True)
class CredentialsConfig:
    """Where keys come from; values are never stored in the config itself.

    ``cvm_role`` opts in to the last link of the chain, the CVM instance role from the metadata
    service. It is off by default: off a CVM, probing the metadata address costs a timeout at
    every start and reload, and quietly using whatever role a machine has is a surprise.
    """

    secret_id_file: str | None = None
    secret_key_file: str | None = None
    token_file: str | None = None
    cvm_role: bool = False


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One account: its label value, where its keys come from, its per-action limit (req/s)."""

    name: str
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    rate_limit: float = DEFAULT_RATE_LIMIT


def parse_accounts(raw: object, errors: Errors) -> tuple[AccountConfig, ...]:
    """Validate the ``accounts:`` list; names must be unique label values."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.add("accounts", "must be a list of accounts")
        return ()
    seen: dict[str, int] = {}
    accounts = []
    for index, entry in enumerate(raw):
        path = f"accounts[{index}]"
        account = _parse_account(entry, path, errors)
        if account is None:
            continue
        if account.name in seen:
            errors.add(f"{path}.name", f"duplicate of accounts[{seen[account.name]}].name "
                                       f"({account.name})")
            continue
        seen[account.name] = index
        accounts.append(account)
    return tuple(accounts)


def _parse_account(raw: object, path: str, errors: Errors) -> AccountConfig | None:
    before = len(errors.lines)
    entry = errors.mapping(raw, path, _ACCOUNT)
    if not entry and raw is not None and not isinstance(raw, dict):
        return None
    name = errors.string(entry, "name", path + ".", None)
    if name is None:
        if entry.get("name") is None:
            errors.add(f"{path}.name", "is required")
    elif not _good_name(name):
        errors.add(f"{path}.name", f"must be 1-{MAX_ACCOUNT_NAME} characters of "
                                   f"[A-Za-z0-9._-], got {show(name)}")
    credentials = parse_credentials(entry.get("credentials"), f"{path}.credentials", errors)
    rate = errors.number(entry, "rate_limit", path + ".", DEFAULT_RATE_LIMIT)
    if len(errors.lines) > before or name is None:
        return None
    return AccountConfig(name=name, credentials=credentials, rate_limit=rate)


def _good_name(name: str) -> bool:
    return 0 < len(name) <= MAX_ACCOUNT_NAME and all(
        c.isascii() and (c.isalnum() or c in "-_.") for c in name)


def parse_credentials(raw: object, path: str, errors: Errors) -> CredentialsConfig:
    """A credentials block at ``path`` (e.g. ``accounts[0].credentials``); same rules as
    ``api.credentials``: id and key files together, a token file only with them."""
    creds = errors.mapping(raw, path, _CREDS)
    p = path + "."
    files: dict[str, str | None] = {}
    for key in ("secret_id_file", "secret_key_file", "token_file"):
        files[key] = errors.string(creds, key, p, None)
        if files[key] == "" or "\x00" in (files[key] or ""):
            errors.add(p + key, "must be a file path" if files[key] else "must not be empty")
            files[key] = None
    given = {key: creds.get(key) is not None for key in files}  # a bad value is still "given"
    if given["secret_id_file"] != given["secret_key_file"]:
        errors.add(path, "secret_id_file and secret_key_file must be set together")
    elif given["token_file"] and not given["secret_id_file"]:
        errors.add(p + "token_file", "needs secret_id_file and secret_key_file")
    return CredentialsConfig(secret_id_file=files["secret_id_file"],
                             secret_key_file=files["secret_key_file"],
                             token_file=files["token_file"],
                             cvm_role=errors.boolean(creds, "cvm_role", p, False))
