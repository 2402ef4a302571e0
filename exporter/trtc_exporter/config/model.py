"""The exporter's configuration: YAML in, frozen dataclasses out, every mistake named by path.

Defaults live here and nowhere else; ``load_config`` rejects unknown keys so that a typo such as
``rate_limt`` is an error instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trtc_exporter.config.accounts import (
    AccountConfig,
    CredentialsConfig,
    parse_accounts,
    parse_credentials,
)
from trtc_exporter.config.coordination import CoordinationConfig, parse_coordination
from trtc_exporter.config.dynamic import (
    RegistrationConfig,
    parse_registration,
    parse_target_files,
)
from trtc_exporter.config.fields import is_http_url
from trtc_exporter.config.webhook import (
    APP_FIELDS,
    WebhookConfig,
    parse_app_callback_key,
    parse_webhook,
)
from trtc_exporter.errors import ConfigError, Errors, key_text, show
from trtc_exporter.generations import ACTIONS, ALL_REGIONS
from trtc_exporter.target import MAX_SDK_APP_ID, Target, duplicate_text, parse_target
from trtc_exporter.textfile import TextFileError, read_text
from trtc_exporter.yamlload import YamlError, load_yaml, outline

DEFAULT_ENDPOINT = "https://trtc.tencentcloudapi.com"
STATE_FACTORS = {"Idle": 2.0, "Preparing": 1.0, "InProgress": 1.0, "Stopped": 10.0,
                 "Exited": 10.0, "Unknown": 1.0}

_TOP = frozenset({"api", "poll_interval", "schedule", "targets", "max_targets", "apps", "pricing",
                  "target_files", "target_files_refresh_interval", "registration", "webhook",
                  "coordination", "accounts"})
_API = frozenset({"endpoint", "region", "rate_limit", "rate_limits", "timeout", "max_retries",
                  "credentials", "budget_share", "rate_guard", "on_overload", "extra_regions"})
REGION_NAME = re.compile(r"[a-z]{2,4}-[a-z]+(-[0-9]+)?")
"""Tencent Cloud region names: ap-guangzhou, na-siliconvalley, eu-frankfurt, ap-shanghai-fsi."""
MAX_RETRIES = 10
_SCHEDULE = frozenset({"state_factors", "stopped_session_factor", "stopped_retention",
                       "not_found_backoff_max"})
_APP = frozenset({"max_concurrent_tasks", "daily_cost_threshold_usd", "region", "account"}
                 ) | APP_FIELDS
_PRICING = frozenset({"transcription_usd_per_minute", "translation_usd_per_minute"})


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The ``api:`` block: endpoint URL, default region, rates in requests/s (``rate_limit``,
    per action ``rate_limits``), ``timeout`` in seconds, retries, credentials, overload policy."""

    endpoint: str = DEFAULT_ENDPOINT
    region: str = "ap-guangzhou"
    rate_limit: float = 20.0
    rate_limits: Mapping[str, float] = field(default_factory=dict)
    timeout: float = 6.0
    max_retries: int = 2
    budget_share: float = 1.0
    rate_guard: float = 0.02
    on_overload: str = "stretch"
    credentials: CredentialsConfig = field(default_factory=CredentialsConfig)
    extra_regions: frozenset[str] = frozenset()
    """Regions accepted for every API generation beyond those the docs list (warned at start)."""

    def rate_for(self, action: str) -> float:
        """Requests/s this replica may spend on one action (limits are per account+action)."""
        return self.rate_limits.get(action, self.rate_limit) * self.budget_share


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """How often each state is polled, relative to poll_interval (settled states less often).

    ``stopped_session_factor`` replaces the Stopped/Exited factor for session targets (SdkAppId +
    SessionId): a stopped TaskId never runs again, but a room can restart its transcription
    under the same session, so by default a stopped session keeps the base cadence.
    """

    state_factors: Mapping[str, float] = field(default_factory=lambda: dict(STATE_FACTORS))
    stopped_session_factor: float = 1.0
    stopped_retention: float = 3600.0
    not_found_backoff_max: float = 600.0


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One entry of ``apps:``: the app's concurrency quota, optional daily cost threshold (USD),
    the region of its tasks found by webhooks (None: ``api.region``; callbacks carry no region)
    and its callback signature key file (None: ``webhook.key_file``)."""

    max_concurrent_tasks: int = 100
    daily_cost_threshold_usd: float | None = None
    account: str | None = None
    region: str | None = None
    callback_key_file: str | None = None


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """List prices taken 2026-11 from Tencent's TRTC pricing page (USD per minute)."""

    transcription_usd_per_minute: float = 0.02
    translation_usd_per_minute: float = 0.016


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, immutable; durations in seconds. Built by ``parse_config`` or
    ``load_config``; a reload builds a new one and swaps it whole."""

    api: ApiConfig = field(default_factory=ApiConfig)
    poll_interval: float = 15.0
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    targets: tuple[Target, ...] = ()
    max_targets: int = 10_000
    apps: Mapping[int, AppConfig] = field(default_factory=dict)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    target_files: tuple[str, ...] = ()
    target_files_refresh_interval: float = 30.0
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    coordination: CoordinationConfig = field(default_factory=CoordinationConfig)
    accounts: tuple[AccountConfig, ...] = ()
    webhook: WebhookConfig = field(default_factory=WebhookConfig)

    def app(self, sdk_app_id: int | None) -> AppConfig:
        """The settings of one SdkAppId (defaults for an app not in ``apps:``)."""
        return self.apps.get(sdk_app_id or 0, AppConfig())

    @property
    def account_names(self) -> tuple[str, ...]:
        """Names of the configured accounts; ("",) for the implicit one without ``accounts:``."""
        return tuple(a.name for a in self.accounts) or ("",)

    def account_of(self, target: Target) -> str:
        """The account that polls a target: its own ``account``, else its app's, else the first
        of ``accounts:`` ("" without ``accounts:``)."""
        return target.account or self.app(target.sdk_app_id).account or self.account_names[0]

    def rate_for(self, account: str, action: str) -> float:
        """Requests/s this replica may spend on one (account, action): the account's
        ``rate_limit`` (``api.rate_limits``/``rate_limit`` for the implicit account), times
        ``api.budget_share``."""
        for entry in self.accounts:
            if entry.name == account:
                return entry.rate_limit * self.api.budget_share
        return self.api.rate_for(action)

    def app_region(self, sdk_app_id: int) -> str:
        """The region of an app's tasks: ``apps.<id>.region``, else ``api.region``."""
        return self.app(sdk_app_id).region or self.api.region

    def callback_key_files(self) -> dict[int, str]:
        """``apps.<id>.callback_key_file`` of every app that sets one."""
        return {app: c.callback_key_file for app, c in self.apps.items() if c.callback_key_file}


def load_config(path: str | Path) -> Config:
    """Read and validate a config file; raises ConfigError with every problem found."""
    try:
        text = read_text(str(path))
    except TextFileError as exc:
        name = show(str(path)) if "\x00" in str(path) else str(path)
        raise ConfigError([f"{name}: cannot read config file: {exc}"]) from None
    return parse_config_text(text, source=str(path))


def parse_config_text(text: str, source: str = "config") -> Config:
    """Parse YAML text; any YAML or conversion failure becomes a one-line ConfigError that
    starts with ``source`` (the file's path when read by :func:`load_config`).

    Too many targets are refused from a streaming count before any entry is built or checked,
    so a 100 000-target config costs a fraction of a second and little memory to refuse.
    """
    _refuse_too_many(text)
    try:
        raw = load_yaml(text, keep_text=True)
    except YamlError as exc:
        if exc.converting:
            problem = f"cannot convert a value: {exc.problem}"
            raise ConfigError([f"{source}: invalid YAML: {problem}"]) from None
        where = f" at line {exc.line}" if exc.line else ""
        raise ConfigError([f"{source}: invalid YAML{where}: {exc.problem}"]) from None
    return parse_config(raw)


def _refuse_too_many(text: str) -> None:
    seen = outline(text, "targets")
    written = seen.scalars.get("max_targets", "10000")
    limit = int(written) if written.isascii() and written.isdigit() and len(written) < 20 else 0
    if 0 < limit < seen.items:  # an unreadable max_targets is left to the full parse's message
        raise ConfigError([f"targets: {seen.items} targets exceed max_targets ({limit})"])


def parse_config(raw: object) -> Config:
    """Build a Config from a parsed YAML document."""
    errors = Errors()
    top = errors.mapping(raw, "", _TOP)
    api = _parse_api(top.get("api"), errors)
    config = Config(
        api=api,
        poll_interval=errors.duration(top, "poll_interval", "", 15.0),
        schedule=_parse_schedule(top.get("schedule"), errors),
        targets=parse_targets(top.get("targets"), "targets", errors, api.region,
                              extra_regions=api.extra_regions),
        max_targets=errors.integer(top, "max_targets", "", 10_000, minimum=1) or 10_000,
        apps=_parse_apps(top.get("apps"), errors),
        pricing=_parse_pricing(top.get("pricing"), errors),
        target_files=parse_target_files(top.get("target_files"), errors),
        target_files_refresh_interval=errors.duration(top, "target_files_refresh_interval", "",
                                                      30.0),
        registration=parse_registration(top.get("registration"), errors),
        coordination=parse_coordination(top.get("coordination"), errors),
        accounts=parse_accounts(top.get("accounts"), errors),
        webhook=parse_webhook(top.get("webhook"), errors),
    )
    _check_account_references(config, errors)
    if len(config.targets) > config.max_targets:
        errors.add("targets", f"{len(config.targets)} targets exceed max_targets "
                              f"({config.max_targets})")
    errors.raise_if_any()
    return config


def account_problem(account: str, accounts: tuple[AccountConfig, ...]) -> str | None:
    """Why a target's or app's ``account`` cannot be used (None when it can)."""
    if not account:
        return None
    if not accounts:
        return f"refers to account {show(account)} but there is no accounts: list"
    if account not in {a.name for a in accounts}:
        return (f"unknown account {show(account)}; accounts: "
                f"{', '.join(a.name for a in accounts)}")
    return None


def _check_account_references(config: Config, errors: Errors) -> None:
    for index, target in enumerate(config.targets):
        problem = account_problem(target.account, config.accounts)
        if problem:
            errors.add(f"targets[{index}].account", problem)
    for app_id, app in config.apps.items():
        problem = account_problem(app.account or "", config.accounts)
        if problem:
            errors.add(f"apps.{app_id}.account", problem)


def parse_targets(raw: object, path: str, errors: Errors, default_region: str,
                  source: str = "config", extra_regions: frozenset[str] = frozenset()
                  ) -> tuple[Target, ...]:
    """Validate a list of targets and reject duplicates: the same identity twice, or two
    entries that ask the API the same thing (:attr:`Target.lookup`, e.g. one TaskId with and
    without ``sdk_app_id``)."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        errors.add(path, "must be a list of targets")
        return ()
    seen: dict[tuple[str, ...], tuple[int, Target]] = {}
    targets = []
    for index, entry in enumerate(raw):
        target = parse_target(entry, f"{path}[{index}]", errors, default_region, source,
                              extra_regions)
        if target is None:
            continue
        if target.lookup in seen:
            first, other = seen[target.lookup]
            errors.add(f"{path}[{index}]", duplicate_text(f"{path}[{first}]", other, target))
            continue
        seen[target.lookup] = (index, target)
        targets.append(target)
    return tuple(targets)



def _parse_api(raw: object, errors: Errors) -> ApiConfig:
    api = errors.mapping(raw, "api", _API)
    p = "api."
    endpoint = errors.string(api, "endpoint", p, DEFAULT_ENDPOINT) or ""
    if not is_http_url(endpoint):
        errors.add(p + "endpoint", f"must be an http:// or https:// URL, got {show(endpoint)}")
        endpoint = DEFAULT_ENDPOINT
    extra = _parse_extra_regions(api.get("extra_regions"), errors)
    region = errors.string(api, "region", p, "ap-guangzhou") or ""
    if region not in ALL_REGIONS | extra:
        errors.add(p + "region",
                   f"must be one of {', '.join(sorted(ALL_REGIONS))} or in api.extra_regions, "
                   f"got {show(region)}")
    on_overload = errors.string(api, "on_overload", p, "stretch") or ""
    if on_overload not in ("stretch", "refuse"):
        errors.add(p + "on_overload", f'must be "stretch" or "refuse", got {show(on_overload)}')
        on_overload = "stretch"
    return ApiConfig(
        endpoint=endpoint.rstrip("/"),
        region=region,
        rate_limit=errors.number(api, "rate_limit", p, 20.0),
        rate_limits=_parse_rate_limits(api.get("rate_limits"), errors),
        timeout=errors.duration(api, "timeout", p, 6.0),
        max_retries=errors.integer(api, "max_retries", p, 2, minimum=0, maximum=MAX_RETRIES) or 0,
        budget_share=errors.number(api, "budget_share", p, 1.0, high=1.0),
        rate_guard=errors.duration(api, "rate_guard", p, 0.02, positive=False),
        on_overload=on_overload,
        credentials=parse_credentials(api.get("credentials"), "api.credentials", errors),
        extra_regions=extra,
    )


def _parse_extra_regions(raw: object, errors: Errors) -> frozenset[str]:
    if raw is None:
        return frozenset()
    if not isinstance(raw, list):
        errors.add("api.extra_regions", "must be a list of region names")
        return frozenset()
    regions = set()
    for index, region in enumerate(raw):
        if not isinstance(region, str) or not REGION_NAME.fullmatch(region):
            errors.add(f"api.extra_regions[{index}]",
                       f"must be a region name like ap-xyz, got {show(region)}")
            continue
        regions.add(region)
    return frozenset(regions)


def _parse_rate_limits(raw: object, errors: Errors) -> dict[str, float]:
    limits = errors.mapping(raw, "api.rate_limits", frozenset(ACTIONS.values()))
    return {action: errors.number(limits, action, "api.rate_limits.", 20.0)
            for action in limits if action in ACTIONS.values()}


def _parse_schedule(raw: object, errors: Errors) -> ScheduleConfig:
    sched = errors.mapping(raw, "schedule", _SCHEDULE)
    factors_raw = errors.mapping(sched.get("state_factors"), "schedule.state_factors",
                                 frozenset(STATE_FACTORS))
    factors = dict(STATE_FACTORS)
    for state in factors_raw:
        if state in STATE_FACTORS:
            factors[state] = errors.number(factors_raw, state, "schedule.state_factors.", 1.0)
    return ScheduleConfig(
        state_factors=factors,
        stopped_session_factor=errors.number(sched, "stopped_session_factor", "schedule.", 1.0),
        stopped_retention=errors.duration(sched, "stopped_retention", "schedule.", 3600.0),
        not_found_backoff_max=errors.duration(sched, "not_found_backoff_max", "schedule.", 600.0),
    )


def _parse_apps(raw: object, errors: Errors) -> dict[int, AppConfig]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        errors.add("apps", "must be a mapping of SdkAppId to settings")
        return {}
    apps = {}
    for key, value in raw.items():
        path = f"apps.{key_text(key)}"
        app = _app_id(key)
        if app is None:
            errors.add(path, "key must be an SdkAppId (a positive integer)")
            continue
        apps[app] = _parse_app(errors.mapping(value, path, _APP), path + ".", errors)
    return apps


def _app_id(key: object) -> int | None:
    """An ``apps:`` key as an SdkAppId: decimal digits as written (the loader keeps ``0x1F``
    and ``012`` as text, so they are refused rather than read as 31 and 10)."""
    if isinstance(key, str) and key.isascii() and key.isdigit() and not key.startswith("0"):
        key = int(key)
    if isinstance(key, bool) or not isinstance(key, int) or not 1 <= key <= MAX_SDK_APP_ID:
        return None
    return key


def _parse_app(app: Mapping[str, Any], p: str, errors: Errors) -> AppConfig:
    threshold = None
    if app.get("daily_cost_threshold_usd") is not None:
        threshold = errors.number(app, "daily_cost_threshold_usd", p, 0.0)
    region = errors.string(app, "region", p, None)
    if region is not None and region not in ALL_REGIONS:
        errors.add(p + "region",
                   f"must be one of {', '.join(sorted(ALL_REGIONS))}, got {show(region)}")
        region = None
    return AppConfig(
        max_concurrent_tasks=errors.integer(app, "max_concurrent_tasks", p, 100, minimum=1) or 100,
        daily_cost_threshold_usd=threshold,
        account=errors.string(app, "account", p, None),
        region=region,
        callback_key_file=parse_app_callback_key(app, p, errors),
    )


def _parse_pricing(raw: object, errors: Errors) -> PricingConfig:
    pricing = errors.mapping(raw, "pricing", _PRICING)
    return PricingConfig(
        transcription_usd_per_minute=errors.number(
            pricing, "transcription_usd_per_minute", "pricing.", 0.02, low_inclusive=True),
        translation_usd_per_minute=errors.number(
            pricing, "translation_usd_per_minute", "pricing.", 0.016, low_inclusive=True),
    )


__all__ = ["AccountConfig", "ApiConfig", "AppConfig", "Config", "ConfigError",
           "CoordinationConfig", "CredentialsConfig", "PricingConfig", "ScheduleConfig",
           "account_problem", "load_config", "parse_config", "parse_config_text",
           "parse_targets"]
