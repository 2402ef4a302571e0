"""Prometheus scrapes the demo exporter and stores every metric family the exporter declares."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.stack import SELECTOR, Stack, wait_until
from trtc_exporter.metrics import ALL_METRIC_NAMES, BY_NAME

pytestmark = pytest.mark.e2e
SCRAPE_DEADLINE = 60.0  # seconds after the stack started
# Families that legitimately do not exist in the demo, and why. Each must really be absent (see
# test_exceptions_are_still_absent) so that a stale entry is noticed.
NEEDS_CONFIG = {
    "trtc_exporter_cost_threshold_usd": "exported only for apps with "
    "apps.<sdk_app_id>.daily_cost_threshold_usd in the config; --demo sets none",
    "trtc_exporter_target_file_last_load_successful": "one series per file matched by "
    "target_files in the config (label path); --demo reads no target files",
    **{name: "the coordination families exist only with coordination.redis_url; --demo runs "
       "without Redis (tests/integration/test_ha.py checks them)" for name in (
           "trtc_exporter_coordination_up", "trtc_exporter_coordination_members",
           "trtc_exporter_targets_owned")},
    **{name: "the callback relay's families exist only with webhook.forward_to; --demo "
       "relays nowhere" for name in (
           "trtc_exporter_webhook_forward_delivered_total",
           "trtc_exporter_webhook_forward_attempt_failures_total",
           "trtc_exporter_webhook_forward_dropped_total",
           "trtc_exporter_webhook_forward_queued",
           "trtc_exporter_webhook_forward_latency_seconds")},
}


def series_names(spec_name: str) -> list[str]:
    """The names under which a family appears in Prometheus (histograms: bucket and count)."""
    if BY_NAME[spec_name].kind == "histogram":
        return [spec_name + "_bucket", spec_name + "_count"]
    return [spec_name]


def _params() -> list[object]:
    params: list[object] = []
    for name in sorted(ALL_METRIC_NAMES - NEEDS_CONFIG.keys()):
        params.append(pytest.param(name, id=name))
    return params


def stored_names(stack: Stack) -> set[str]:
    return set(stack.api("/api/v1/label/__name__/values"))


def test_exporter_target_is_up(stack: Stack) -> None:
    """Both exporters of the job of deploy/prometheus.yml are scraped successfully (up == 1)."""
    def all_up() -> list[dict[str, Any]]:
        ones = [r for r in stack.query(f"up{{{SELECTOR}}}") if r["value"][1] == "1"]
        return ones if len(ones) == len(stack.exporter_addresses) else []

    result = wait_until(all_up, stack.deadline(SCRAPE_DEADLINE), "up == 1", stack.logs)
    assert sorted(r["metric"]["instance"] for r in result) == sorted(stack.exporter_addresses)


@pytest.mark.parametrize("name", _params())
def test_metric_family_is_stored(stack: Stack, name: str) -> None:
    """The family is in Prometheus after a few scrapes of the demo."""
    wanted = set(series_names(name))
    wait_until(lambda: wanted <= stored_names(stack), stack.deadline(SCRAPE_DEADLINE),
               f"{sorted(wanted)} in Prometheus")


def test_exceptions_are_still_absent(stack: Stack) -> None:
    """Every family excused from the check above is really absent and really declared."""
    assert NEEDS_CONFIG.keys() <= ALL_METRIC_NAMES
    wait_until(lambda: "trtc_exporter_build_info" in stored_names(stack),
               stack.deadline(SCRAPE_DEADLINE), "a first scrape")
    assert not NEEDS_CONFIG.keys() & stored_names(stack)
