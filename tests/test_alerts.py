"""Tests of alerts/: promtool validity, promtool unit tests and the mixin conventions.

promtool comes with Debian's `prometheus` package; CI installs it, so a missing promtool fails.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from trtc_exporter import metrics
from trtc_exporter.webhook import forward

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


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ALERTS_DIR / "generate.py"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def test_committed_rule_files_match_the_generator() -> None:
    """alerts/*.yml and the PrometheusRule are what alerts/generate.py makes of src/ + config."""
    result = _generate("--check")
    assert result.returncode == 0, result.stderr


def test_templates_name_no_job() -> None:
    """No template selects by a job name: every selector comes from trtcExporterSelector."""
    for path in sorted((ALERTS_DIR / "src").glob("*.yml")):
        for rule in _rules(path):
            assert "job=" not in rule["expr"], rule


def test_every_rule_reads_the_exporter_through_the_selector(tmp_path: Path) -> None:
    """With another selector, every raw series in every rule is selected by it, and promtool
    accepts the result."""
    selector = 'namespace="monitoring", job="custom-trtc"'
    result = _generate("--selector", selector, "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    files = [tmp_path / "recording_rules.yml", tmp_path / "alerts.yml"]
    for path in files:
        text = path.read_text("utf-8")
        assert "trtc-exporter" not in text.replace("trtc-transcription-exporter", "")
    exprs = [rule["expr"] for path in files for rule in _rules(path)]
    raw = re.compile(r"\b((?:trtc_|up\b)[\w:]*)(\{[^}]*\})?")
    for expr in exprs:
        for name, matchers in raw.findall(expr):
            if ":" in name:  # a recorded series: its rule applied the selector
                continue
            assert matchers.startswith("{" + selector), f"{name} without the selector in {expr}"
    check = _run("check", "rules", "--lint=all", "--lint-fatal", *(str(p) for p in files))
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_bad_selector_is_refused(tmp_path: Path) -> None:
    """An empty selector or one written with braces exits 2 with a message naming the setting."""
    for selector in ("", '{job="x"}'):
        result = _generate("--selector", selector, "--output-dir", str(tmp_path))
        assert result.returncode == 2
        assert "trtcExporterSelector:" in result.stderr


def test_exporter_down_does_not_guess_the_job() -> None:
    """TrtcExporterDown and TrtcExporterAbsent read `up` through the configured selector only."""
    settings = yaml.safe_load((ALERTS_DIR / "config.yml").read_text("utf-8"))
    exprs = {rule["alert"]: rule["expr"] for rule in ALERTS}
    assert exprs["TrtcExporterDown"] == f"up{{{settings['trtcExporterSelector']}}} == 0"
    assert exprs["TrtcExporterAbsent"] == f"absent(up{{{settings['trtcExporterSelector']}}})"


# Bucket boundaries per histogram, as metrics.py declares them (its bucket tuples).
HISTOGRAM_BUCKETS = {
    "trtc_api_request_duration_seconds": metrics.LATENCY_BUCKETS,
    "trtc_exporter_budget_wait_seconds": metrics.WAIT_BUCKETS,
    "trtc_exporter_webhook_forward_latency_seconds": forward.LATENCY_BUCKETS,
}
HISTOGRAM_QUANTILE = re.compile(r"histogram_quantile\([^,]+,.*?\b(\w+)_bucket\b", re.DOTALL)
COMPARED_NUMBER = re.compile(r"(?:>|<|>=|<=)\s*(?:bool\s+)?([0-9][0-9.e+]*)(?![\w.])")


def _quantile_histograms(expr: str, recorded: dict[str, str]) -> set[str]:
    """Histograms whose quantile ``expr`` reads, directly or through recorded series."""
    found = set(HISTOGRAM_QUANTILE.findall(expr))
    for name, source in recorded.items():
        if re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr):
            found |= set(HISTOGRAM_QUANTILE.findall(source))
    return found


def test_alert_thresholds_on_quantiles_are_bucket_boundaries() -> None:
    """A threshold compared with a histogram_quantile is a bucket boundary of that histogram, so
    the interpolated quantile crosses it exactly when the observations do."""
    recorded = {rule["record"]: rule["expr"] for rule in _rules(RECORDING_RULES)}
    checked = 0
    for rule in ALERTS:
        for histogram in _quantile_histograms(rule["expr"], recorded):
            for number in COMPARED_NUMBER.findall(rule["expr"]):
                assert float(number) in HISTOGRAM_BUCKETS[histogram], (rule["alert"], number)
                checked += 1
    assert checked >= 1


def test_every_histogram_has_its_buckets_listed() -> None:
    """The bucket map above covers every histogram metrics.py declares (none escapes the check)."""
    declared = {spec.name for spec in metrics.SPECS if spec.kind == "histogram"}
    assert set(HISTOGRAM_BUCKETS) == declared
