"""PromQL taken from the committed dashboards and rule files, made runnable against Prometheus.

Grafana replaces dashboard variables before it sends a query; :func:`grafana_substitute` does the
same for the variables our dashboards use, with values that suit a short test history.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.stack import ALERTS, ROOT

DASHBOARDS = ROOT / "dashboards"
RULE_FILES = (ALERTS / "recording_rules.yml", ALERTS / "alerts.yml")
# Grafana's built-in variables. Grafana derives them from the time range and the data source's
# scrape interval; these are what it would pick for a short range with a 1s scrape interval,
# except $__rate_interval, kept at a window that still covers several scrapes on a loaded
# machine. $__range covers the whole short history of the test ("today", "this month").
BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__interval_ms": "15000",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[\w-]+)?\}|\[\[(\w+)\]\]|\$(\w+)")


@dataclass(frozen=True, slots=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref_id}"


def grafana_substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` like Grafana does."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in variables:
            raise KeyError(f"dashboard variable ${name} has no test value: {expr}")
        return variables[name]

    return _VARIABLE.sub(value, expr)


def _load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return board


def dashboard_variables(board: Mapping[str, Any]) -> dict[str, str]:
    """Each template variable → its "All" value (the dashboards' default), built-ins added.

    The datasource variable only selects where queries go; it never appears in an expression.
    """
    values = dict(BUILTINS)
    for variable in board["templating"]["list"]:
        if variable["type"] == "datasource":
            values[variable["name"]] = ""
        else:
            assert variable.get("includeAll"), f"variable {variable['name']} has no All option"
            values[variable["name"]] = variable.get("allValue") or ".*"
    return values


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        if panel["type"] == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel


def panel_queries() -> list[PanelQuery]:
    """Every PromQL target of every panel of every committed dashboard, variables replaced."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = _load(path)
        variables = dashboard_variables(board)
        for panel in _panels(board["panels"]):
            for index, target in enumerate(panel.get("targets", [])):
                if "expr" in target:
                    expr = grafana_substitute(target["expr"], variables)
                    ref = target.get("refId") or str(index)
                    found.append(PanelQuery(path.stem, panel["title"], ref, expr))
    return found


def variable_queries() -> list[PanelQuery]:
    """Every ``label_values(expr, label)`` variable query as (expr, label) in ``ref_id``."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = _load(path)
        variables = dashboard_variables(board)
        for variable in board["templating"]["list"]:
            query = variable.get("query")
            if isinstance(query, dict):
                query = query.get("query", "")
            match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", str(query or ""))
            if variable["type"] == "query" and match:
                expr = grafana_substitute(match.group(1), variables)
                found.append(PanelQuery(path.stem, "$" + variable["name"], match.group(2), expr))
    return found


def rule_groups() -> list[dict[str, Any]]:
    """Every rule group of the bundled rule files."""
    return [group for path in RULE_FILES
            for group in yaml.safe_load(path.read_text("utf-8"))["groups"]]


def alert_rules() -> dict[str, dict[str, Any]]:
    """Alert name → its rule, as written in alerts/alerts.yml."""
    return {rule["alert"]: rule for group in rule_groups() for rule in group["rules"]
            if "alert" in rule}
