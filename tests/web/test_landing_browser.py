"""The landing page in a real headless Chromium: the table renders, filter and sort work."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import build_exporter
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.polling.state import apply_outcome
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STATUSES = {"t-a": "InProgress", "t-b": "Idle", "t-c": "InProgress", "t-d": None}


@pytest.fixture(scope="module")
def page_url() -> Iterator[str]:
    exporter = build_exporter({"targets": [{"task_id": t} for t in STATUSES]})
    now = exporter.clock.time()
    for state in exporter.store.snapshot():
        status = STATUSES[state.target.task_id]
        result = (ApiFailure("FailedOperation.TaskNotExist", "gone", "r") if status is None
                  else TaskStatus(status, status, None, state.target.task_id, "", "r"))
        exporter.store.put(apply_outcome(state, Outcome(result, 1, 0.05), now))
    server = ExporterHTTPServer(("127.0.0.1", 0), handler_class(Routes(exporter)), None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def dump_dom(url: str, tmp: Path) -> str:
    """Load a page in headless Chromium and return the DOM after its scripts ran."""
    if CHROMIUM is None:
        pytest.fail("chromium is not installed; run ./scripts/test, which installs it")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp}", "--virtual-time-budget=2000",
            "--dump-dom", url]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def visible_rows(dom: str) -> list[tuple[str, str]]:
    """(task_id, status) of every table row the browser shows, in order."""
    rows = re.findall(r'<tr data-status="(\w+)" class="\w+"( style="display: none;")?>'
                      r'<td>[^<]*</td><td>[^<]*</td><td>([^<]*)</td>', dom)
    return [(task, status) for status, hidden, task in rows if not hidden]


def test_table_renders_every_target(page_url: str, tmp_path: Path) -> None:
    """All four targets appear with their status after the browser parsed the page."""
    rows = visible_rows(dump_dom(page_url, tmp_path))
    assert sorted(rows) == [("t-a", "InProgress"), ("t-b", "Idle"), ("t-c", "InProgress"),
                            ("t-d", "NotFound")]


def test_status_filter_hides_other_rows(page_url: str, tmp_path: Path) -> None:
    """Filtering by InProgress (the page's script) leaves only the two running tasks visible."""
    rows = visible_rows(dump_dom(page_url + "?status=InProgress", tmp_path))
    assert sorted(rows) == [("t-a", "InProgress"), ("t-c", "InProgress")]


def test_sort_by_status_orders_rows(page_url: str, tmp_path: Path) -> None:
    """Clicking-equivalent sort on the status column orders rows alphabetically by status."""
    rows = visible_rows(dump_dom(page_url + "?sort=status", tmp_path))
    assert [status for _, status in rows] == ["Idle", "InProgress", "InProgress", "NotFound"]
