"""Every query of every committed dashboard returns data from Prometheus scraping the demo."""

from __future__ import annotations

import pytest

from tests.e2e.queries import PanelQuery, panel_queries, variable_queries
from tests.e2e.stack import Stack, has_values, wait_until

pytestmark = pytest.mark.e2e
# Seconds after the stack started: rate() over the substituted 1m window needs two scrapes, and
# the demo's looping tasks bring every status (e.g. "Recently stopped") within a minute.
DATA_DEADLINE = 90.0
PANEL_QUERIES = panel_queries()
VARIABLE_QUERIES = variable_queries()


def test_dashboards_have_queries() -> None:
    """The dashboards were found and have panel and variable queries to check."""
    assert len(PANEL_QUERIES) > 20
    assert len(VARIABLE_QUERIES) >= 8


@pytest.mark.parametrize("query", PANEL_QUERIES, ids=[q.id for q in PANEL_QUERIES])
def test_panel_query_returns_data(stack: Stack, query: PanelQuery) -> None:
    """The panel's PromQL, variables replaced as Grafana would, returns at least one number."""
    wait_until(lambda: has_values(stack.query(query.expr)), stack.deadline(DATA_DEADLINE),
               f"data for {query.id}: {query.expr}")


@pytest.mark.parametrize("query", VARIABLE_QUERIES, ids=[q.id for q in VARIABLE_QUERIES])
def test_variable_query_lists_values(stack: Stack, query: PanelQuery) -> None:
    """The variable's label_values() query finds at least one non-empty value to choose."""
    label = query.ref_id

    def values() -> set[str]:
        return {r["metric"].get(label, "") for r in stack.query(query.expr)} - {""}

    wait_until(values, stack.deadline(DATA_DEADLINE), f"values of {label} in {query.expr}")
