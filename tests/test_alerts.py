"""Tests of alerts/: promtool validity, promtool unit tests and the mixin conventions.

promtool comes with Debian's `prometheus` package; CI installs it, so a missing promtool fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ALERTS_DIR = ROOT / "alerts"
ALERT_RULES = ALERTS_DIR / "alerts.yml"
RECORDING_RULES = ALERTS_DIR / "recording_rules.yml"
RUNBOOK = ALERTS_DIR / "runbook.md"
UNIT_TESTS = sorted((ALERTS_DIR / "tests").glob("*.yml"))
RUNBOOK_URL = (
    "https://github.com/trtc-transcription-exporter/trtc-transcription-exporter"
    "/blob/main/alerts/runbook.md#"
)
NAME = re.compile(r"^Trtc(?:[A-Z][a-z0-9]+)+$")
SEVERITIES = {"critical", "warning", "info"}
PRICE_SERIES = ("trtc:transcription_price_usd_per_minute", "trtc:translation_price_usd_per_minute")


def _rules(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text("utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


ALERTS = [rule for rule in _rules(ALERT_RULES) if "alert" in rule]
ALERT_IDS = [rule["alert"] for rule in ALERTS]


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found on PATH: install Debian's 'prometheus' package")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def _anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown document."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def _unit_test_cases() -> list[dict[str, Any]]:
    cases = []
    for path in UNIT_TESTS:
        for test in yaml.safe_load(path.read_text("utf-8"))["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


def test_promtool_check_rules_is_clean() -> None:
    """promtool accepts both rule files with every lint check fatal."""
    result = _run(
        "check", "rules", "--lint=all", "--lint-fatal", str(RECORDING_RULES), str(ALERT_RULES)
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    """Every promtool unit test in alerts/tests passes."""
    assert UNIT_TESTS, "no promtool unit tests in alerts/tests"
    result = _run("test", "rules", *(str(path) for path in UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_names_are_unique() -> None:
    """No two alerts share a name."""
    assert len(ALERT_IDS) == len(set(ALERT_IDS))


@pytest.mark.parametrize("rule", ALERTS, ids=ALERT_IDS)
def test_alert_follows_mixin_conventions(rule: dict[str, Any]) -> None:
    """The alert has the Trtc prefix, a for:, a severity, a static summary, a templated
    description and a runbook_url to its own section."""
    name = rule["alert"]
    annotations = rule.get("annotations", {})
    assert NAME.match(name), f"{name}: not CamelCase with the Trtc prefix"
    assert "for" in rule, f"{name}: no for:"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: bad severity"
    assert annotations.get("summary", "").endswith("."), f"{name}: summary is not a sentence"
    assert "{{" not in annotations["summary"], f"{name}: summary must be static"
    assert "{{" in annotations.get("description", ""), f"{name}: description is not templated"
    assert annotations.get("runbook_url") == RUNBOOK_URL + name.lower()
    assert set(annotations) == {"summary", "description", "runbook_url"}


@pytest.mark.parametrize("name", ALERT_IDS)
def test_alert_has_runbook_section(name: str) -> None:
    """runbook.md has the section the alert's runbook_url points to."""
    assert name.lower() in _anchors(RUNBOOK.read_text("utf-8"))


def test_runbook_sections_belong_to_alerts() -> None:
    """Every alert-named section of runbook.md belongs to an existing alert."""
    sections = re.findall(r"^## (Trtc\w+)$", RUNBOOK.read_text("utf-8"), re.MULTILINE)
    assert sorted(sections) == sorted(ALERT_IDS)


@pytest.mark.parametrize("name", ALERT_IDS)
def test_alert_has_firing_and_silent_unit_tests(name: str) -> None:
    """A promtool case expects the alert to fire and another expects it silent."""
    cases = [case for case in _unit_test_cases() if case["alertname"] == name]
    assert any(case.get("exp_alerts") for case in cases), f"{name}: no firing test case"
    assert any(not case.get("exp_alerts") for case in cases), f"{name}: no silent test case"


def test_unit_tests_reference_only_existing_alerts() -> None:
    """No promtool case names an alert that does not exist (it would pass vacuously)."""
    assert {case["alertname"] for case in _unit_test_cases()} <= set(ALERT_IDS)


@pytest.mark.parametrize("series", PRICE_SERIES)
def test_price_is_defined_in_one_place(series: str) -> None:
    """Each price per minute is recorded by exactly one rule, and no other rule repeats it."""
    rules = _rules(RECORDING_RULES) + _rules(ALERT_RULES)
    price_rules = [rule for rule in rules if rule.get("record") == series]
    assert len(price_rules) == 1
    price = re.search(r"vector\(([\d.]+)\)", price_rules[0]["expr"])
    assert price is not None
    others = [rule for rule in rules if rule is not price_rules[0]]
    assert not [rule for rule in others if price.group(1) in str(rule["expr"])]


def test_only_the_exporter_down_alert_selects_by_job() -> None:
    """The job selector, which users edit, appears in a single alert."""
    assert [rule["alert"] for rule in ALERTS if "job=" in rule["expr"]] == ["TrtcExporterDown"]
