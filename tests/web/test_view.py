"""The landing page's view: filters, sort and refresh read from the URL query, never an error."""

from __future__ import annotations

from typing import Any

from trtc_exporter.web.view import View, parse_view


def row(task_id: str, status: str, age: float | None, **extra: Any) -> dict[str, Any]:
    base = {"task_id": task_id, "session_id": "", "sdk_app_id": None, "region": "ap-guangzhou",
            "api": "ai_transcription", "status": status, "labels": {}, "age_seconds": age,
            "last_error_code": None, "request_id": None, "next_poll_in_seconds": None,
            "resolved_task_id": "", "source": "config"}
    return {**base, **extra}


ROWS = [row("a", "Idle", 5.0, labels={"team": "live"}), row("b", "InProgress", None),
        row("c", "InProgress", 1.0, region="ap-singapore", last_error_code="InternalError")]


def test_bad_values_fall_back_to_defaults() -> None:
    """An unknown sort column, order or an out-of-range refresh is ignored."""
    view = parse_view({"sort": "secret", "order": "sideways", "refresh": "1", "status": " Idle "})
    assert view == View(status="Idle")
    assert parse_view({"refresh": "abc"}).refresh == 0
    assert parse_view({"refresh": "30"}).refresh == 30


def test_filters_combine() -> None:
    """Exact filters, the label pair and the case-insensitive free text all apply together."""
    assert [r["task_id"] for r in View(status="InProgress").arrange(ROWS)] == ["b", "c"]
    assert [r["task_id"] for r in View(label="team=live").arrange(ROWS)] == ["a"]
    assert [r["task_id"] for r in View(q="internalerror").arrange(ROWS)] == ["c"]
    assert View(status="Idle", region="ap-singapore").arrange(ROWS) == []


def test_numeric_sort_puts_missing_values_last() -> None:
    """Sorting by age orders numerically, rows without an answer last."""
    assert [r["task_id"] for r in View(sort="age").arrange(ROWS)] == ["c", "a", "b"]


def test_query_round_trips_and_drops_defaults() -> None:
    """query() encodes the view for links; parsing it gives the same view back."""
    view = View(status="InProgress", label="team=live", sort="age", order="desc", refresh=15)
    text = view.query()
    assert text == "?status=InProgress&label=team%3Dlive&sort=age&order=desc&refresh=15"
    pairs = dict(p.split("=", 1) for p in text[1:].split("&"))
    assert parse_view({k: v.replace("%3D", "=") for k, v in pairs.items()}) == view
    assert View().query() == "?"
