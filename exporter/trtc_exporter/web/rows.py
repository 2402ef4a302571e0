"""The per-target row of the landing page and ``/api/v1/targets`` (a web view-model)."""

from __future__ import annotations

from typing import Any

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.dropped import printable_target
from trtc_exporter.response import NOT_FOUND
from trtc_exporter.web.protocol import TargetFacts


def target_rows(facts: list[TargetFacts], now: WallSeconds) -> list[dict[str, Any]]:
    """Rows sorted by identity (api, region, task id, app id, session id); ``now`` in wall-clock
    seconds. The sort key is ``Target.key``, all strings, so it is total over any targets (an
    unset ``sdk_app_id`` is "" there, never None beside an integer). A target whose text cannot
    be written (lone surrogate, over-long id: validation stops those at every entrance) is left
    out rather than failing the page; /metrics counts it."""
    shown = [f for f in facts if printable_target(f.state.target, (f.state.resolved_task_id,))]
    ordered = sorted(shown, key=lambda f: f.state.target.key)
    return [target_row(f, now) for f in ordered]


def target_row(facts: TargetFacts, now: WallSeconds) -> dict[str, Any]:
    """One target's row: identity, labels, shown status, ages and latency in seconds."""
    state, due = facts.state, facts.next_poll_in
    t = state.target
    return {
        "id": t.id, "api": t.api, "action": t.action, "region": t.region, "task_id": t.task_id,
        "sdk_app_id": t.sdk_app_id, "session_id": t.session_id, "labels": dict(t.labels),
        "source": t.source, "status": state.shown_status(now),
        "resolved_task_id": state.resolved_task_id, "start_time": state.start_time,
        "last_success": state.last_success or None,
        "age_seconds": round(now - state.last_answer, 3) if state.last_answer else None,
        "poll_success": state.poll_success, "last_error_code": state.last_error_code or None,
        "request_id": state.last_request_id or None,
        "latency_seconds": round(state.last_latency, 4) if state.last_poll else None,
        "next_poll_in_seconds": None if due is None else round(due, 3),
        "interval_seconds": state.interval or None,
        "not_found": state.status == NOT_FOUND, "expires_at": facts.expires_at,
    }
