"""Start, --config.check and reload apply the same semantic checks, from checks.py.

Each refused config is tried on all three paths: ``cli.build_exporter`` (start) and
``cli.check_config`` (``--config.check``) must refuse it with exit code 2 and the same line, and
a running exporter must answer ``POST /-/reload`` with a non-200 status and keep its config.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import ENDPOINT, serving
from trtc_exporter import cli
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.checks import REGISTRATION_AUTH, check
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import load_config, parse_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.secret import Secret

GOOD_TARGETS = [{"task_id": "t-1"}]


@pytest.fixture
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Credential files that exist, and an environment with no other credentials."""
    for name in ("TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY",
                 "TENCENTCLOUD_SESSION_TOKEN", "TENCENTCLOUD_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "id").write_text("AKIDchecks000000000000000000000001\n")
    (tmp_path / "key").write_text("checksSECRETkey0000000000000000001\n")
    return {"secret_id_file": str(tmp_path / "id"), "secret_key_file": str(tmp_path / "key")}


def overload(tmp: Path, creds: dict[str, str]) -> dict[str, object]:
    return {"api": {"endpoint": ENDPOINT, "rate_limit": 1, "on_overload": "refuse",
                    "credentials": creds},
            "poll_interval": "1s", "targets": [{"task_id": f"t-{n}"} for n in range(5)]}


def open_registration(tmp: Path, creds: dict[str, str]) -> dict[str, object]:
    return {"api": {"endpoint": ENDPOINT, "credentials": creds}, "targets": GOOD_TARGETS,
            "registration": {"enabled": True, "db_path": str(tmp / "reg.db")}}


def missing_files(tmp: Path, creds: dict[str, str]) -> dict[str, object]:
    return {"api": {"endpoint": ENDPOINT, "credentials": {
        "secret_id_file": str(tmp / "no-such-id"), "secret_key_file": str(tmp / "no-such-key")}},
        "targets": GOOD_TARGETS}


def no_credentials(tmp: Path, creds: dict[str, str]) -> dict[str, object]:
    return {"api": {"endpoint": ENDPOINT}, "targets": GOOD_TARGETS}


def bad_callback_key(tmp: Path, creds: dict[str, str]) -> dict[str, object]:
    (tmp / "hook-key").write_text("not a key!\n")
    return {"api": {"endpoint": ENDPOINT, "credentials": creds}, "targets": GOOD_TARGETS,
            "webhook": {"key_file": str(tmp / "hook-key")},
            "apps": {1400000001: {"callback_key_file": str(tmp / "no-such-key")}}}


CASES: list[tuple[Callable[[Path, dict[str, str]], dict[str, object]], str]] = [
    (overload, "api.on_overload: refuse: DescribeAITranscription: 5 targets"),
    (open_registration, REGISTRATION_AUTH),
    (missing_files, "cannot read credentials file"),
    (no_credentials, "no TencentCloud credentials"),
    (bad_callback_key, "webhook.key_file: "),
    (bad_callback_key, "apps.1400000001.callback_key_file: "),
]


def write(path: Path, raw: dict[str, object]) -> str:
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(("make", "line"), CASES)
def test_check_refuses(make: Callable[..., dict[str, object]], line: str, tmp_path: Path,
                       secrets: dict[str, str]) -> None:
    """check() raises ConfigError with the problem's line."""
    with pytest.raises(ConfigError) as caught:
        check(parse_config(make(tmp_path, secrets)), basic_auth=False)
    assert any(line in problem for problem in caught.value.lines), caught.value.lines


@pytest.mark.parametrize(("make", "line"), CASES)
def test_config_check_refuses(make: Callable[..., dict[str, object]], line: str,
                              tmp_path: Path, secrets: dict[str, str],
                              capsys: pytest.CaptureFixture[str]) -> None:
    """--config.check exits 2 and prints the problem for what start would refuse."""
    path = write(tmp_path / "c.yml", make(tmp_path, secrets))
    assert cli.check_config(path) == cli.EXIT_USAGE
    assert line in capsys.readouterr().err


@pytest.mark.parametrize(("make", "line"), CASES)
def test_start_refuses(make: Callable[..., dict[str, object]], line: str, tmp_path: Path,
                       secrets: dict[str, str]) -> None:
    """Start refuses the same configs with the same line."""
    args = cli.build_parser().parse_args(
        ["--config.file", write(tmp_path / "c.yml", make(tmp_path, secrets))])
    with pytest.raises(ConfigError) as caught:
        cli.build_exporter(args, (0, 1))
    assert any(line in problem for problem in caught.value.lines)


@pytest.mark.parametrize(("make", "line"), CASES)
def test_reload_refuses_and_keeps_the_last_good_config(
        make: Callable[..., dict[str, object]], line: str, tmp_path: Path,
        secrets: dict[str, str]) -> None:
    """POST /-/reload answers non-200 and the running config stays in force."""
    path = tmp_path / "c.yml"
    good = {"api": {"endpoint": ENDPOINT, "credentials": secrets}, "targets": GOOD_TARGETS}
    write(path, good)
    creds = StaticProvider(Credentials(Secret("AKIDx"), Secret("k")), "file")
    exporter = Exporter(load_config(path), creds, clock=FakeClock(), config_path=str(path))
    running = exporter.config
    write(path, make(tmp_path, secrets))
    with serving(exporter) as base:
        answer = requests.post(base + "/-/reload", timeout=5)
    assert answer.status_code != 200 and line in answer.text
    assert exporter.config is running and not exporter.runtime.reload_successful
    exporter.sources.close()


def test_checks_pass_a_good_config(tmp_path: Path, secrets: dict[str, str]) -> None:
    """A config with readable credentials and basic auth for registration passes."""
    raw = open_registration(tmp_path, secrets)
    checked = check(parse_config(raw), basic_auth=True)
    assert checked.credentials.source == "file" and checked.bearer_token is None


def test_extra_regions_are_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A target in an api.extra_regions region passes the checks and each entry is warned of."""
    config = parse_config({"api": {"region": "ap-xyz", "extra_regions": ["ap-xyz", "ap-tokyo"]},
                           "targets": [{"task_id": "t"}]})
    with caplog.at_level(logging.WARNING, logger="trtc_exporter.checks"):
        check(config, basic_auth=False, credentials=lambda c: StaticProvider(
            Credentials(Secret("id"), Secret("key")), "env"))
    assert config.targets[0].region == "ap-xyz"
    assert "api.extra_regions: ap-xyz is not in the documented region lists" in caplog.text
    assert "api.extra_regions: ap-tokyo is already a known region" in caplog.text


def test_config_check_counts_in_good_english(secrets: dict[str, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """One target is "1 target" in the summary and the plan line, never "1 targets"."""
    path = tmp_path / "one.yml"
    path.write_text(yaml.safe_dump({"api": {"endpoint": ENDPOINT, "credentials": secrets},
                                    "targets": GOOD_TARGETS}))
    assert cli.check_config(str(path)) == 0
    out = capsys.readouterr().out
    assert "DescribeAITranscription: 1 target at 15s need" in out
    assert "1 targets" not in out
