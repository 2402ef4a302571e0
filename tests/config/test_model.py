"""The config loader: every schema rule, the bad-config corpus, defaults, and robustness."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trtc_exporter.config.model import (
    DEFAULT_ENDPOINT,
    STATE_FACTORS,
    AppConfig,
    Config,
    ConfigError,
    CredentialsConfig,
    load_config,
    parse_config,
    parse_config_text,
    parse_targets,
)
from trtc_exporter.errors import Errors
from trtc_exporter.target import Target

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
INVALID = sorted(FIXTURES.glob("invalid-*.yml"))
VALID = sorted(FIXTURES.glob("valid-*.yml"))


def errors_of(raw: object) -> list[str]:
    """The ConfigError lines parse_config raises for raw (fails when it loads)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return caught.value.lines


def expected_error(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# error: "), f"{path.name} must start with '# error: <message>'"
    return first.removeprefix("# error: ").replace("{path}", str(path))


# -- the corpus --------------------------------------------------------------------------------

def test_corpus_is_present() -> None:
    """The bad-config corpus and the valid examples exist (an empty glob would test nothing)."""
    assert len(INVALID) >= 80
    assert {p.name for p in VALID} >= {"valid-minimal.yml", "valid-full.yml", "valid-mixed.yml"}


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem.removeprefix("invalid-"))
def test_invalid_config_gives_exactly_its_message(path: Path) -> None:
    """Each one-mistake file is rejected with exactly the one message its first line names."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [expected_error(path)]


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_load(path: Path) -> None:
    """Every valid-*.yml example loads into a Config."""
    assert isinstance(load_config(path), Config)


# -- valid configs and defaults ----------------------------------------------------------------

def test_empty_config_is_all_defaults() -> None:
    """An empty document gives the documented defaults and no targets."""
    config = load_config(FIXTURES / "valid-empty.yml")
    assert config == Config()
    api = config.api
    assert (api.endpoint, api.region, api.rate_limit, api.rate_limits) == (
        DEFAULT_ENDPOINT, "ap-guangzhou", 20.0, {})
    assert (api.timeout, api.max_retries, api.budget_share, api.rate_guard, api.on_overload) == (
        6.0, 2, 1.0, 0.02, "stretch")
    assert api.credentials == CredentialsConfig(None, None, None, cvm_role=False)
    assert config.poll_interval == 15.0
    assert config.schedule.state_factors == STATE_FACTORS
    assert (config.schedule.stopped_retention, config.schedule.not_found_backoff_max) == (
        3600.0, 600.0)
    assert (config.targets, config.max_targets, config.apps) == ((), 10_000, {})
    assert (config.pricing.transcription_usd_per_minute,
            config.pricing.translation_usd_per_minute) == (0.02, 0.016)


def test_minimal_config_defaults_its_target() -> None:
    """A bare task_id becomes a 1.0 target in the default region with no labels or overrides."""
    (target,) = load_config(FIXTURES / "valid-minimal.yml").targets
    assert target == Target(api="ai_transcription", region="ap-guangzhou",
                            task_id="1234567890-abcd")
    assert (target.sdk_app_id, target.session_id, target.labels, target.poll_interval,
            target.translation, target.source) == (None, "", (), None, False, "config")


def test_full_config_sets_every_field() -> None:
    """Every field of the full example reaches the Config with its type converted."""
    config = load_config(FIXTURES / "valid-full.yml")
    api = config.api
    assert api.endpoint == "http://127.0.0.1:8080"  # trailing slash dropped
    assert (api.region, api.rate_limit, api.timeout, api.max_retries) == ("ap-tokyo", 10.0, 3.0, 4)
    assert api.rate_limits == {"DescribeAITranscription": 8.0, "DescribeCloudTranscription": 12.5}
    assert (api.budget_share, api.rate_guard, api.on_overload) == (0.5, 0.05, "refuse")
    assert api.credentials == CredentialsConfig("/run/secrets/id", "/run/secrets/key",
                                                "/run/secrets/token", cvm_role=True)
    assert config.poll_interval == 90.0
    assert config.schedule.state_factors == {"Idle": 4.0, "Preparing": 0.5, "InProgress": 1.0,
                                             "Stopped": 20.0, "Exited": 30.0, "Unknown": 2.0}
    assert (config.schedule.stopped_retention, config.schedule.not_found_backoff_max) == (
        7200.0, 900.0)
    assert config.schedule.stopped_session_factor == 2.0
    assert config.max_targets == 50
    assert config.apps == {1400123456: AppConfig(20, 12.5), 1400654321: AppConfig(100, None)}
    assert (config.pricing.transcription_usd_per_minute,
            config.pricing.translation_usd_per_minute) == (0.03, 0.0)
    first, session, cloud = config.targets
    assert (first.region, first.labels, first.poll_interval) == (
        "ap-guangzhou", (("team", "live"), ("tier", "1")), 5.0)
    assert (session.api, session.region, session.sdk_app_id, session.session_id) == (
        "ai_transcription", "ap-tokyo", 1400123456, "room-42-subtitles")
    assert (cloud.api, cloud.region, cloud.task_id, cloud.sdk_app_id, cloud.translation,
            cloud.poll_interval) == ("cloud_transcription", "ap-hongkong", "task-b", 1400654321,
                                     True, 60.0)


def test_mixed_config_keeps_both_api_generations() -> None:
    """1.0 and 2.0 targets load together, each inheriting or overriding the region."""
    targets = load_config(FIXTURES / "valid-mixed.yml").targets
    assert [(t.api, t.region, t.task_id, t.sdk_app_id, t.session_id) for t in targets] == [
        ("ai_transcription", "ap-singapore", "v1-task", None, ""),
        ("ai_transcription", "na-siliconvalley", "", 1400123456, "room-42-subtitles"),
        ("cloud_transcription", "ap-singapore", "v2-task", 1400123456, ""),
        ("cloud_transcription", "ap-hongkong", "v2-task", 1400123456, ""),
    ]
    assert [t.action for t in targets] == ["DescribeAITranscription"] * 2 + [
        "DescribeCloudTranscription"] * 2


def test_null_means_default() -> None:
    """An explicit YAML null is the same as leaving the key out."""
    config = parse_config_text("api:\n  rate_limit:\n  max_retries:\n  region:\n  credentials:\n"
                               "poll_interval:\nmax_targets:\nschedule:\napps:\npricing:\n"
                               "targets:\n  - task_id: t\n    sdk_app_id:\n    labels:\n")
    assert dataclasses.replace(config, targets=()) == Config()
    assert config.targets[0].sdk_app_id is None


def test_rate_for_applies_the_budget_share() -> None:
    """The per-action rate is the action's own limit (or rate_limit) times budget_share."""
    config = parse_config({"api": {"rate_limit": 10, "budget_share": 0.5,
                                   "rate_limits": {"DescribeCloudTranscription": 4}}})
    assert config.api.rate_for("DescribeAITranscription") == 5.0
    assert config.api.rate_for("DescribeCloudTranscription") == 2.0


def test_app_settings_fall_back_to_defaults() -> None:
    """An app without settings (or no app at all) gets the default AppConfig."""
    config = parse_config({"apps": {1400123456: {"max_concurrent_tasks": 5}}})
    assert config.app(1400123456).max_concurrent_tasks == 5
    assert config.app(1400999999) == AppConfig()
    assert config.app(None) == AppConfig()


def test_config_is_frozen() -> None:
    """Config objects cannot be changed after loading (reload swaps them whole)."""
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.poll_interval = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080", "https://trtc.intl.tencentcloudapi.com",
                                      "http://[::1]:8080", "HTTPS://trtc.tencentcloudapi.com"])
def test_endpoint_accepts_http_urls(endpoint: str) -> None:
    """Any http(s) URL with a host is a valid endpoint, IPv6 literal included."""
    assert parse_config({"api": {"endpoint": endpoint}}).api.endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["trtc.tencentcloudapi.com", "http://", "http://[::1",
                                      "unix:///run/x.sock"])
def test_endpoint_rejects_non_urls(endpoint: str) -> None:
    """Strings that are not http(s) URLs with a host are rejected, malformed IPv6 included."""
    assert errors_of({"api": {"endpoint": endpoint}}) == [
        f"api.endpoint: must be an http:// or https:// URL, got {endpoint!r}"]


@pytest.mark.parametrize("region", ["ap-guangzhou", "ap-hongkong", "ap-singapore", "ap-tokyo",
                                    "na-siliconvalley"])
def test_api_region_accepts_every_region_of_either_api(region: str) -> None:
    """api.region may be any region of 1.0 or 2.0; targets are checked against their own API."""
    assert parse_config({"api": {"region": region}}).api.region == region


def test_every_mistake_is_reported_at_once() -> None:
    """All problems are collected in one ConfigError, in document order."""
    assert errors_of({"api": {"rate_limit": -1, "timeout": "6"}, "poll_interval": "x",
                      "targets": [{}, {"task_id": "a", "labels": {"job": "j"}}]}) == [
        "api.rate_limit: must be > 0, got -1",
        'api.timeout: not a valid duration string: "6"',
        'poll_interval: not a valid duration string: "x"',
        "targets[0]: needs task_id, or sdk_app_id + session_id",
        "targets[1].labels.job: label name 'job' is reserved by the exporter",
    ]


def test_config_error_text_is_the_lines() -> None:
    """str(ConfigError) is its lines joined by newlines, ready to print."""
    error = ConfigError(["a: x", "b: y"])
    assert str(error) == "a: x\nb: y"


def test_unreadable_file_names_the_path(tmp_path: Path) -> None:
    """A missing config file is a ConfigError naming the file."""
    path = tmp_path / "nope.yml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [f"{path}: cannot read config file: No such file or directory"]


def test_non_utf8_file_is_a_config_error(tmp_path: Path) -> None:
    """A config file that is not UTF-8 is a ConfigError, not a UnicodeDecodeError."""
    path = tmp_path / "latin1.yml"
    path.write_bytes(b"targets:\n  - task_id: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.lines == [
        f"{path}: cannot read config file: not UTF-8 (byte offset 25); save it as UTF-8"]


def test_nul_in_config_path_is_a_config_error() -> None:
    """A config path with a NUL byte is a ConfigError, not a ValueError from the OS layer."""
    with pytest.raises(ConfigError) as caught:
        load_config("trtc\x00.yml")
    assert caught.value.lines == ["'trtc\\x00.yml': cannot read config file: invalid path"]


def test_yaml_merge_keys_are_not_duplicates() -> None:
    """A YAML merge (<<) whose keys are overridden is not reported as a duplicate key."""
    config = parse_config_text("api: &api\n  rate_limit: 5\n  timeout: 2s\n"
                               "targets:\n  - &t {task_id: a, region: ap-tokyo}\n"
                               "  - <<: *t\n    task_id: b\n")
    assert [(t.task_id, t.region) for t in config.targets] == [("a", "ap-tokyo"), ("b", "ap-tokyo")]


def test_parse_targets_serves_target_files() -> None:
    """parse_targets tags targets with their source and reports paths under the given prefix."""
    errors = Errors()
    targets = parse_targets([{"task_id": "a"}, {"task_id": "a"}, {"session_id": "s"}],
                            "file.yml", errors, "ap-singapore", source="file")
    assert [(t.task_id, t.region, t.source) for t in targets] == [("a", "ap-singapore", "file")]
    assert errors.lines == ["file.yml[1]: duplicate of file.yml[0] (task a)",
                            "file.yml[2].sdk_app_id: is required with session_id"]


def test_max_targets_counts_after_deduplication() -> None:
    """Exactly max_targets targets is allowed."""
    config = parse_config({"max_targets": 2, "targets": [{"task_id": "a"}, {"task_id": "b"}]})
    assert len(config.targets) == 2


# -- robustness --------------------------------------------------------------------------------

_FIELD_NAMES = ["api", "endpoint", "region", "rate_limit", "rate_limits", "timeout",
                "max_retries", "credentials", "secret_id_file", "secret_key_file", "token_file",
                "cvm_role", "budget_share", "rate_guard", "on_overload", "poll_interval",
                "schedule", "state_factors", "stopped_session_factor",
                "stopped_retention", "not_found_backoff_max",
                "targets", "task_id", "sdk_app_id", "session_id", "labels", "translation",
                "max_targets", "apps", "pricing", "transcription_usd_per_minute",
                "translation_usd_per_minute", "max_concurrent_tasks",
                "daily_cost_threshold_usd", "Idle", "Stopped", "DescribeAITranscription",
                "cloud_transcription", "ap-hongkong", "15s", "job", "team"]

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**64)
            | st.sampled_from([0, -1, 1, 0.5, 1e308])
            | st.sampled_from([308, 309, 400, 4301, 5000]).map(lambda digits: 10**digits)
            | st.floats() | st.text(max_size=12) | st.sampled_from(_FIELD_NAMES))
_keys = st.sampled_from(_FIELD_NAMES) | st.text(max_size=8) | st.integers() | st.booleans()
_documents = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(_keys, children, max_size=5),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.dictionaries(st.sampled_from(_FIELD_NAMES[:1] + ["poll_interval", "schedule",
                                                                 "targets", "max_targets",
                                                                 "apps", "pricing"]),
                           _documents, max_size=6) | _documents)
def test_any_document_gives_a_config_or_a_config_error(doc: Any) -> None:
    """Whatever YAML-able document it gets, the parser returns a Config or raises ConfigError."""
    try:
        result = parse_config(doc)
    except ConfigError as exc:
        assert exc.lines and all("\n" not in line for line in exc.lines)
    else:
        assert isinstance(result, Config)


@settings(max_examples=75, deadline=None)
@given(doc=_documents)
def test_any_document_through_yaml_gives_a_config_or_a_config_error(doc: Any) -> None:
    """A document dumped to YAML text and loaded back never raises anything but ConfigError."""
    try:
        text = yaml.safe_dump({"targets": [doc], "api": doc}, allow_unicode=True)
    except ValueError:  # PyYAML cannot print an integer of more than 4300 digits
        assume(False)
    with contextlib.suppress(ConfigError):
        parse_config_text(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_gives_a_config_or_a_config_error(text: str) -> None:
    """Arbitrary text (YAML or not) never raises anything but ConfigError."""
    with contextlib.suppress(ConfigError):
        parse_config_text(text)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**400, -(10**400)],
                         ids=["nan", "inf", "-inf", "1e400", "-1e400"])
def test_non_finite_and_huge_numbers_are_config_errors(value: float) -> None:
    """NaN, infinities and integers beyond float range are rejected for every number field."""
    lines = errors_of({"api": {"rate_limit": value}, "pricing": {
        "transcription_usd_per_minute": value}})
    assert [line.split(":")[0] for line in lines] == ["api.rate_limit",
                                                      "pricing.transcription_usd_per_minute"]
    assert all("must be a finite number" in line for line in lines)


def test_huge_integers_never_break_messages() -> None:
    """Integers too long for str() are shown abbreviated in messages and paths."""
    huge = 10**5000
    lines = errors_of({"max_targets": -huge, "apps": {huge: {}},
                       "targets": [{"task_id": "t", "labels": {huge: huge, "x": huge}}]})
    assert lines == [
        "targets[0].labels.a huge integer: invalid label name a huge integer "
        "(must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __)",
        "targets[0].labels.x: label value must be a string, got integer; quote it",
        "max_targets: must be >= 1, got a huge integer",
        "apps.a huge integer: key must be an SdkAppId (a positive integer)",
    ]


def test_non_string_keys_are_unknown_fields() -> None:
    """A non-string key where field names belong is reported as an unknown field."""
    assert errors_of({1: "x", None: "y", ("a",): "z"}) == [
        "1: unknown field", "null: unknown field", "a tuple: unknown field"]


def test_control_characters_stay_on_one_line() -> None:
    """A key or value with a newline is escaped so each message stays one line."""
    assert errors_of({"api": {"region": "ap-\nx"}, "bad\nkey": 1}) == [
        "'bad\\nkey': unknown field",
        "api.region: must be one of ap-beijing, ap-guangzhou, ap-hongkong, ap-shanghai, "
        "ap-singapore, ap-tokyo, na-siliconvalley or in api.extra_regions, got 'ap-\\nx'",
    ]


def test_too_many_targets_are_refused_before_any_entry_is_checked() -> None:
    """1 000 wrong entries past max_targets give the one count line, not 1 000 messages."""
    text = "max_targets: 10\ntargets:\n" + "".join("  - task_id: [x]\n" for _ in range(1000))
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text)
    assert caught.value.lines == ["targets: 1000 targets exceed max_targets (10)"]
