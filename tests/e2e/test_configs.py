"""The deploy/ examples are valid for promtool and amtool, as shipped and as the tests run them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.e2e.stack import (
    ALERTS,
    AMTOOL,
    DEPLOY,
    PROMTOOL,
    require,
    template_alertmanager,
    template_prometheus,
)

pytestmark = pytest.mark.e2e


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def templated_prometheus(tmp_path: Path) -> Path:
    path = tmp_path / "prometheus.yml"
    doc = template_prometheus(DEPLOY / "prometheus.yml", "127.0.0.1:9877", "127.0.0.1:9093")
    path.write_text(yaml.safe_dump(doc), "utf-8")
    return path


def test_promtool_checks_templated_prometheus_config(tmp_path: Path) -> None:
    """promtool check config accepts the templated deploy/prometheus.yml and both rule files."""
    require(PROMTOOL)
    result = run(PROMTOOL, "check", "config", str(templated_prometheus(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout, result.stdout


def test_promtool_checks_shipped_prometheus_config() -> None:
    """promtool check config accepts deploy/prometheus.yml as shipped (relative rule paths)."""
    require(PROMTOOL)
    result = run(PROMTOOL, "check", "config", str(DEPLOY / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_checks_alertmanager_configs(tmp_path: Path) -> None:
    """amtool check-config accepts deploy/alertmanager.yml as shipped and as templated."""
    require(AMTOOL)
    path = tmp_path / "alertmanager.yml"
    doc = template_alertmanager(DEPLOY / "alertmanager.yml", "http://127.0.0.1:1/hook")
    path.write_text(yaml.safe_dump(doc), "utf-8")
    for config in (DEPLOY / "alertmanager.yml", path):
        result = run(AMTOOL, "check-config", str(config))
        assert result.returncode == 0, result.stdout + result.stderr


def test_example_loads_the_bundled_rules_and_matches_the_job_selector() -> None:
    """The example loads the bundled alerts/*.yml; its job is the one the rules select."""
    doc = template_prometheus(DEPLOY / "prometheus.yml", "127.0.0.1:9877", "127.0.0.1:9093")
    assert sorted(doc["rule_files"]) == sorted(str(p) for p in ALERTS.glob("*.yml")
                                               if p.name != "config.yml")
    jobs = [job["job_name"] for job in doc["scrape_configs"]]
    settings = yaml.safe_load((ALERTS / "config.yml").read_text("utf-8"))
    assert [f'job="{job}"' for job in jobs] == [settings["trtcExporterSelector"]]
