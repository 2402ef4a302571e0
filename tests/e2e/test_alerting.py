"""A bundled alert fires in Prometheus and reaches a webhook through Alertmanager, annotated."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import STOPPING_TASK
from tests.e2e.queries import alert_rules
from tests.e2e.stack import ALERTS, Stack, wait_until

pytestmark = pytest.mark.e2e
ALERT = "TrtcTaskStoppedUnexpectedly"
# Seconds after the stack started: ~12 s InProgress, then `for: 1m` while Stopped, plus polls,
# scrapes, evaluation and Alertmanager's (shortened) group_wait.
ALERT_DEADLINE = 150.0


def is_ours(alert: dict[str, Any]) -> bool:
    labels = alert["labels"]
    return bool(labels.get("alertname") == ALERT
                and labels.get("task_id") == STOPPING_TASK["task_id"])


def test_alert_fires_in_prometheus(stack: Stack) -> None:
    """TrtcTaskStoppedUnexpectedly turns firing for the task that stopped while monitored."""
    def firing() -> list[dict[str, Any]]:
        return [a for a in stack.api("/api/v1/alerts")["alerts"]
                if is_ours(a) and a["state"] == "firing"]

    alerts = wait_until(firing, stack.deadline(ALERT_DEADLINE), f"{ALERT} firing",
                        lambda: f"alerts: {stack.api('/api/v1/alerts')}\n{stack.logs()}")
    assert alerts[0]["labels"]["status"] == "Stopped"


def test_alert_reaches_webhook_with_annotations(stack: Stack) -> None:
    """Alertmanager routes the alert to the example's webhook with summary, description, runbook."""
    received = wait_until(lambda: [a for a in stack.webhook.alerts()
                                   if is_ours(a) and a["status"] == "firing"],
                          stack.deadline(ALERT_DEADLINE + 30), f"{ALERT} at the webhook",
                          lambda: f"received: {stack.webhook.notifications}\n{stack.logs()}")
    rule = alert_rules()[ALERT]
    annotations = received[0]["annotations"]
    assert annotations["summary"] == rule["annotations"]["summary"]
    assert annotations["runbook_url"] == rule["annotations"]["runbook_url"]
    assert annotations["runbook_url"].endswith("#" + ALERT.lower())
    assert f"## {ALERT}\n" in (ALERTS / "runbook.md").read_text("utf-8")
    description = annotations["description"]
    assert STOPPING_TASK["task_id"] in description and "Stopped" in description, description
    assert "{{" not in description
    assert received[0]["labels"]["severity"] == rule["labels"]["severity"]
    assert {note["receiver"] for note in stack.webhook.notifications} == {"trtc-webhook"}
