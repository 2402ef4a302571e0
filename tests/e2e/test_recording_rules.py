"""Every recording rule of alerts/recording_rules.yml produces series from the demo's history."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.queries import rule_groups
from tests.e2e.stack import INTERVAL, Stack, has_values, seconds, wait_until

pytestmark = pytest.mark.e2e
# Seconds after the stack started: time for the first scrapes, plus two evaluation intervals of
# the rule's group. A group with `interval: 1m` is first evaluated up to a minute after Prometheus
# starts; if that is before two scrapes exist, its next run is a minute later.
FIRST_SCRAPES = 45.0
# Groups evaluated less often than this (the 30-day cost group: every 15m, first run up to 15 min
# after start) cannot be waited for; their expression is evaluated directly instead: the same
# PromQL over the same data, only not stored under the record name yet.
LONGEST_WAITED_INTERVAL = 60.0

def _params() -> list[Any]:
    params = []
    for group in rule_groups():
        interval = seconds(group.get("interval", INTERVAL))
        waited = interval <= LONGEST_WAITED_INTERVAL
        for rule in group["rules"]:
            if "record" not in rule:
                continue
            labels = ", ".join(f'{k}="{v}"' for k, v in sorted(rule.get("labels", {}).items()))
            ident = rule["record"] + (f"{{{labels}}}" if labels else "")
            query = ident if waited else f"({rule['expr']})"
            deadline = FIRST_SCRAPES + 2 * interval if waited else FIRST_SCRAPES
            params.append(pytest.param(query, deadline,
                                       id=ident if waited else f"{ident} (expr)"))
    return params


@pytest.mark.parametrize(("query", "deadline"), _params())
def test_recording_rule_produces_series(stack: Stack, query: str, deadline: float) -> None:
    """The recorded series (or, for a rarely evaluated group, its expression) has a number."""
    wait_until(lambda: has_values(stack.query(query)), stack.deadline(deadline),
               f"series of {query}")
