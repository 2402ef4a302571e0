"""Tests of dashboards/: generated JSON is current and every dashboard follows our conventions.

Also checks that every metric a dashboard or rule queries is one the exporter declares.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards"
GENERATOR = DASHBOARD_DIR / "generate.py"
RULE_FILES = [ROOT / "alerts" / "recording_rules.yml", ROOT / "alerts" / "alerts.yml"]
EXPECTED_UIDS = {
    "trtc-transcription-overview",
    "trtc-api-health",
    "trtc-exporter-internals",
    "trtc-usage-cost",
}
# Series that are neither exporter metrics nor recorded by our rules: Prometheus' own `up`.
EXTERNAL_SERIES = {"up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan", "atan2"}

DASHBOARDS = {
    path.name: json.loads(path.read_text("utf-8")) for path in DASHBOARD_DIR.glob("*.json")
}


def _panels() -> list[tuple[str, dict[str, Any]]]:
    """(dashboard file, panel) for every non-row panel, rows' nested panels included."""
    found = []
    for name, board in DASHBOARDS.items():
        for panel in board["panels"]:
            nested = panel.get("panels", []) if panel["type"] == "row" else [panel]
            found.extend((name, item) for item in nested)
    return found


PANELS = _panels()
PANEL_IDS = [f"{name}:{panel['title']}" for name, panel in PANELS]


def _rule_exprs() -> list[str]:
    docs = [yaml.safe_load(path.read_text("utf-8")) for path in RULE_FILES]
    return [str(rule["expr"]) for doc in docs for group in doc["groups"] for rule in group["rules"]]


def _recorded_names() -> set[str]:
    doc = yaml.safe_load(RULE_FILES[0].read_text("utf-8"))
    return {
        rule["record"] for group in doc["groups"] for rule in group["rules"] if "record" in rule
    }


def _variable_exprs() -> list[str]:
    exprs = []
    for board in DASHBOARDS.values():
        for variable in board["templating"]["list"]:
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", str(variable.get("query", "")))
            if variable["type"] == "query" and match:
                exprs.append(match.group(1))
    return exprs


def _all_exprs() -> list[str]:
    panel_exprs = [target["expr"] for _, panel in PANELS for target in panel.get("targets", [])]
    return panel_exprs + _variable_exprs() + _rule_exprs()


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (strings, matchers, ranges and groupings removed)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[A-Za-z_:][\w:]*", text):
        is_call = re.match(r"\s*\(", text[match.end() :])
        if not is_call and match.group().lower() not in PROMQL_WORDS:
            names.add(match.group())
    return names


def test_metric_name_extraction() -> None:
    """The PromQL name extractor finds metrics and skips functions, labels and keywords."""
    expr = (
        'sum by (action, le) (rate(a_bucket{code!="x y", region=~"$region"}[$__rate_interval]))'
        " / on (job) group_left () max(rec:b:rate5m offset 5m) > bool 0.5 or vector(1e-3)"
    )
    assert metric_names(expr) == {"a_bucket", "rec:b:rate5m"}


def test_committed_json_is_current() -> None:
    """dashboards/*.json is exactly what dashboards/generate.py produces."""
    pytest.importorskip("grafana_foundation_sdk")
    result = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_check_reports_a_stale_file(tmp_path: Path) -> None:
    """generate.py --check exits 1 and names a file that differs from the generator."""
    pytest.importorskip("grafana_foundation_sdk")
    run = [sys.executable, str(GENERATOR), "--output-dir", str(tmp_path)]
    assert subprocess.run(run, timeout=300, check=False).returncode == 0
    (tmp_path / "trtc-api-health.json").write_text("{}\n", "utf-8")
    result = subprocess.run(
        [*run, "--check"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 1
    assert "trtc-api-health.json" in result.stderr


def test_uids_are_unique_and_stable() -> None:
    """The four dashboards have their fixed, distinct uids."""
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert sorted(uids) == sorted(EXPECTED_UIDS)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_has_datasource_job_and_instance_variables(name: str) -> None:
    """Each dashboard has a Prometheus ${datasource} variable and job/instance query variables."""
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for label in ("job", "instance"):
        assert variables[label]["type"] == "query"
        assert str(variables[label]["query"]).startswith("label_values(")


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_ids_are_unique(name: str) -> None:
    """Panel ids within a dashboard are distinct."""
    ids = [panel["id"] for panel in DASHBOARDS[name]["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("name", "panel"), PANELS, ids=PANEL_IDS)
def test_panel_has_description_unit_and_datasource(name: str, panel: dict[str, Any]) -> None:
    """Every panel has a description, a unit, and queries on the ${datasource} variable."""
    assert panel.get("description", "").strip(), "no description"
    assert panel["fieldConfig"]["defaults"].get("unit"), "no unit"
    assert panel["datasource"]["uid"] == "${datasource}"
    assert panel.get("targets"), "no query"
    for target in panel["targets"]:
        assert target["datasource"]["uid"] == "${datasource}"
        assert target["expr"].strip()


def test_recorded_series_used_exist() -> None:
    """Every recording-rule series (level:metric:op) queried is recorded in recording_rules.yml."""
    used = {name for expr in _all_exprs() for name in metric_names(expr) if ":" in name}
    assert used - _recorded_names() - EXTERNAL_SERIES == set()


def test_every_queried_metric_is_declared() -> None:
    """Every exporter metric a panel, variable or rule queries is in the metrics module."""
    from trtc_exporter.metrics import ALL_METRIC_NAMES

    def declared(name: str) -> bool:
        bases = [name] + [name.removesuffix(s) for s in HISTOGRAM_SUFFIXES if name.endswith(s)]
        return any(base in ALL_METRIC_NAMES for base in bases)

    used = {name for expr in _all_exprs() for name in metric_names(expr) if ":" not in name}
    assert sorted(name for name in used - EXTERNAL_SERIES if not declared(name)) == []


def test_panel_thresholds_on_quantiles_are_bucket_boundaries() -> None:
    """Every threshold step of a panel that plots a histogram_quantile is a bucket boundary of
    that histogram, so the line is crossed exactly when the observations cross it."""
    from tests.test_alerts import HISTOGRAM_BUCKETS, HISTOGRAM_QUANTILE

    checked = 0
    for _, panel in PANELS:
        exprs = " ".join(t.get("expr", "") for t in panel.get("targets", []))
        histograms = set(HISTOGRAM_QUANTILE.findall(exprs))
        steps = panel.get("fieldConfig", {}).get("defaults", {}).get("thresholds", {})
        values = [step["value"] for step in steps.get("steps", [])
                  if step.get("value") is not None]
        for histogram in histograms:
            for value in values:
                assert float(value) in HISTOGRAM_BUCKETS[histogram], (panel["title"], value)
                checked += 1
    assert checked >= 1
