"""The landing page's view from its URL query: filters, sort order and auto-refresh.

Everything lives in the query string (``?status=InProgress&region=ap-singapore&sort=age&order=
desc&refresh=15``) so a view can be shared as a link. Unknown parameters and values are ignored,
never an error: the page must always render.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

FILTERS = ("status", "api", "app", "region", "label", "q")
REFRESH_RANGE = (5, 3600)  # seconds; other values turn auto-refresh off


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _number(key: str) -> Callable[[dict[str, Any]], tuple[bool, float]]:
    def key_of(row: dict[str, Any]) -> tuple[bool, float]:
        value = row.get(key)
        return (value is None, float(value) if value is not None else 0.0)
    return key_of


def _labels(row: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(row["labels"].items()))


SORT_KEYS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "status": lambda r: r["status"],
    "target": lambda r: (_text(r, "task_id") or _text(r, "session_id")),
    "app": lambda r: _text(r, "sdk_app_id"),
    "region": lambda r: r["region"],
    "api": lambda r: r["api"],
    "labels": _labels,
    "age": _number("age_seconds"),
    "error": lambda r: _text(r, "last_error_code"),
    "request": lambda r: _text(r, "request_id"),
    "next": _number("next_poll_in_seconds"),
}
"""Sortable columns of the target table, by their query name."""


@dataclass(frozen=True, slots=True)
class View:
    """Filters (exact match except ``q``, a case-insensitive substring over the row's ids,
    labels and error), the sort column and direction, and the refresh period in seconds."""

    status: str = ""
    api: str = ""
    app: str = ""
    region: str = ""
    label: str = ""
    q: str = ""
    sort: str = ""
    order: str = "asc"
    refresh: int = 0

    def query(self, **changes: str | int) -> str:
        """This view's URL query ('?…', or '' when empty) with ``changes`` applied."""
        view = replace(self, **changes)  # type: ignore[arg-type]
        pairs = [(name, str(getattr(view, name))) for name in (*FILTERS, "sort", "order",
                                                                "refresh")]
        kept = [(k, v) for k, v in pairs
                if v and not (k == "order" and v == "asc") and not (k == "refresh" and v == "0")]
        return "?" + urlencode(kept) if kept else "?"

    def keep(self, row: dict[str, Any]) -> bool:
        """True when the row passes every filter."""
        exact = (("status", "status"), ("api", "api"), ("app", "sdk_app_id"),
                 ("region", "region"))
        if any(getattr(self, f) and _text(row, key) != getattr(self, f) for f, key in exact):
            return False
        if self.label and self.label not in _labels(row).split(","):
            return False
        return not self.q or self.q.lower() in _haystack(row)

    def arrange(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows that pass the filters, in the view's order (stable)."""
        kept = [r for r in rows if self.keep(r)]
        key = SORT_KEYS.get(self.sort)
        if key is None:
            return kept
        return sorted(kept, key=key, reverse=self.order == "desc")


def _haystack(row: dict[str, Any]) -> str:
    fields = ("task_id", "resolved_task_id", "session_id", "sdk_app_id", "region", "api",
              "status", "last_error_code", "request_id", "source")
    return " ".join([*(_text(row, f) for f in fields), _labels(row)]).lower()


def parse_view(params: Mapping[str, str]) -> View:
    """The view a query asks for; bad values fall back to the defaults."""
    values = {f: params.get(f, "").strip()[:200] for f in FILTERS}
    sort = params.get("sort", "")
    order = params.get("order", "asc")
    try:
        refresh = int(params.get("refresh", "0"))
    except ValueError:
        refresh = 0
    low, high = REFRESH_RANGE
    return View(**values, sort=sort if sort in SORT_KEYS else "",
                order=order if order in ("asc", "desc") else "asc",
                refresh=refresh if low <= refresh <= high else 0)
