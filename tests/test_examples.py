"""Tests of examples/: every example config passes --config.check of the installed console script.

Also keeps examples/full.yml complete: it must set every field the configuration classes know.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import with_secret_files
from trtc_exporter.config.model import (
    ApiConfig,
    AppConfig,
    Config,
    CredentialsConfig,
    PricingConfig,
    ScheduleConfig,
    load_config,
)
from trtc_exporter.config.webhook import FIELDS as WEBHOOK_FIELDS
from trtc_exporter.generations import AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION
from trtc_exporter.target import Target

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
EXPECTED = {"minimal.yml", "full.yml", "mixed-api.yml", "ha-shard.yml"}
CONFIG_FILES = sorted(path.name for path in EXAMPLES.glob("*.yml"))


def _fields(cls: type) -> set[str]:
    """The fields a user can set (derived fields such as Target.key are not config)."""
    return {f.name for f in dataclasses.fields(cls) if f.init}


def _example(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text("utf-8"))
    assert isinstance(document, dict)
    return document


def _exporter() -> str:
    path = shutil.which("trtc-transcription-exporter")
    if path is None:
        pytest.fail("console script not on PATH: pip install -e '.[test]'")
    return path


def test_the_examples_are_the_documented_set() -> None:
    """examples/ holds the minimal, full, mixed-API and HA-shard configs, nothing unchecked."""
    assert set(CONFIG_FILES) == EXPECTED


@pytest.mark.parametrize("name", CONFIG_FILES)
def test_example_passes_config_check(name: str, tmp_path: Path) -> None:
    """`--config.check` accepts the example (its secret files present) and exits 0."""
    text, env = with_secret_files((EXAMPLES / name).read_text("utf-8"), tmp_path)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    result = subprocess.run(
        [_exporter(), "--config.file", str(path), "--config.check"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: valid")


def test_minimal_example_sets_only_targets() -> None:
    """The minimal example is a target list and nothing else; every other field is defaulted."""
    assert set(_example("minimal.yml")) == {"targets"}


def test_full_example_sets_every_field() -> None:
    """examples/full.yml sets every field of every configuration section and target."""
    full = _example("full.yml")
    assert set(full) == _fields(Config)
    assert set(full["api"]) == _fields(ApiConfig)
    assert set(full["api"]["credentials"]) == _fields(CredentialsConfig)
    assert set(full["api"]["rate_limits"]) == {"DescribeAITranscription",
                                               "DescribeCloudTranscription"}
    assert set(full["schedule"]) == _fields(ScheduleConfig)
    assert set(full["schedule"]["state_factors"]) == set(ScheduleConfig().state_factors)
    assert set(full["pricing"]) == _fields(PricingConfig)
    assert all(set(app) == _fields(AppConfig) for app in full["apps"].values())
    assert set(full["webhook"]) == WEBHOOK_FIELDS
    target_keys = set().union(*(set(target) for target in full["targets"]))
    assert target_keys == _fields(Target) - {"source"}


def test_full_example_shows_the_defaults() -> None:
    """Where a field has a default, examples/full.yml shows exactly that default."""
    config = load_config(EXAMPLES / "full.yml")
    defaults = Config()
    assert dataclasses.replace(config.api, credentials=defaults.api.credentials,
                               rate_limits={}) == defaults.api
    assert set(config.api.rate_limits.values()) == {defaults.api.rate_limit}
    assert config.api.credentials.cvm_role is defaults.api.credentials.cvm_role
    assert (config.poll_interval, config.max_targets) == (defaults.poll_interval,
                                                          defaults.max_targets)
    assert config.schedule == defaults.schedule
    assert config.pricing == defaults.pricing
    (app,) = config.apps.values()
    assert app.max_concurrent_tasks == AppConfig().max_concurrent_tasks
    assert dataclasses.replace(config.webhook, key_file=None, forward=None) == \
        dataclasses.replace(defaults.webhook, key_file=None)


def test_mixed_example_uses_both_api_generations() -> None:
    """examples/mixed-api.yml holds 1.0 task-id, 1.0 session and 2.0 targets."""
    targets = load_config(EXAMPLES / "mixed-api.yml").targets
    assert {t.api for t in targets} == {AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION}
    assert any(t.session_id for t in targets) and any(
        t.task_id and t.api == AI_TRANSCRIPTION for t in targets)


def test_ha_shard_example_halves_the_budget() -> None:
    """examples/ha-shard.yml gives each of its two shards half of the account's rate limit."""
    config = load_config(EXAMPLES / "ha-shard.yml")
    assert config.api.budget_share == 0.5
    text = (EXAMPLES / "ha-shard.yml").read_text("utf-8")
    assert "--shard 0/2" in text and "--shard 1/2" in text
