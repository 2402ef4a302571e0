"""The landing page in a real headless Chromium, behind basic auth and its strict CSP.

Filters and sorting come from the URL; at 1 400 px and at a 390 px phone width nothing overflows
horizontally, the same-origin stylesheet and script load, screenshots are written to
``tests/artifacts/`` (git-ignored) and axe-core finds no serious or critical violation.
"""

from __future__ import annotations

import base64
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import build_exporter
from tests.web.browser import Browser
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.clock import FakeClock
from trtc_exporter.polling.state import apply_outcome
from trtc_exporter.response import ApiFailure, TaskStatus
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer
from trtc_exporter.web.toolkit.webconfig import WebConfigStore

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
AXE_DIR = ROOT / "tests" / ".axe"
AXE_VERSION = "4.14.1"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
LONG_ID = "1234567890-abcdef-0123456789-fedcba"
LONG_SESSION = "room-" + "0123456789abcdef" * 12  # 197 characters, under the 256 bound
LONG_LABELS = {  # long names and values, no "team": the filter tests below stay as they are
    "deployment_environment_and_availability_zone_of_this_transcription_pipeline":
        "production-europe-west-frankfurt-availability-zone-b-canary-release-2024-11-30",
    "customer": "enterprise-customer-with-an-extraordinarily-long-tenant-name-0042-" * 3,
    "tier": "gold"}
AUTH = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret-pass").decode()}
TARGETS = [
    {"task_id": "t-a", "labels": {"team": "live"}},
    {"task_id": "t-b", "labels": {"team": "ops"}},
    {"task_id": LONG_ID, "labels": {"team": "live"}},
    {"task_id": "t-d"},
    {"task_id": "t-e", "region": "ap-singapore"},
    {"api": "cloud_transcription", "task_id": "cloud-9f8e7d6c", "sdk_app_id": 1400123456,
     "region": "ap-singapore"},
    {"sdk_app_id": 1400000001, "session_id": "room-42-subtitles"},
    {"sdk_app_id": 1400000002, "session_id": LONG_SESSION, "labels": LONG_LABELS},
]
# (minutes ago, status or error code) per target, oldest first
POLLS: dict[str, list[tuple[int, str]]] = {
    "t-a": [(55, "Idle"), (40, "InProgress"), (0, "InProgress")],
    "t-b": [(30, "Idle"), (0, "Idle")],
    LONG_ID: [(70, "InProgress"), (20, "Preparing"), (10, "InProgress")],
    "t-d": [(5, "FailedOperation.TaskNotExist")],
    "t-e": [(50, "InProgress"), (2, "InternalError")],
    "cloud-9f8e7d6c": [(45, "InProgress"), (15, "Exited")],
    "room-42-subtitles": [(25, "InProgress"), (1, "InProgress")],
    LONG_SESSION: [(30, "Idle"), (0, "Idle")],
}


def _outcome(what: str, task_id: str) -> Outcome:
    if "." in what or what == "InternalError":
        return Outcome(ApiFailure(what, "m", f"req-{task_id}-err"), 1, 0.05)
    return Outcome(TaskStatus(what, what, None, task_id or "resolved-77", "",
                              f"req-{task_id or 'session'}-0123456789abcdef"), 1, 0.05)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A served exporter with a history of polls over the last hour, behind basic auth."""
    clock = FakeClock()
    exporter = build_exporter({"targets": TARGETS}, clock)
    now = clock.time()
    for state in exporter.store.snapshot():
        key = state.target.task_id or state.target.session_id
        for minutes, what in POLLS[key]:
            state = apply_outcome(state, _outcome(what, state.target.task_id), now - 60 * minutes)
        exporter.store.put(state)
    web = tmp_path_factory.mktemp("web") / "web.yml"
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=4)).decode()
    web.write_text(f"basic_auth_users:\n  ops: '{hashed}'\n")
    server = ExporterHTTPServer(("127.0.0.1", 0), handler_class(Routes(exporter)),
                                WebConfigStore(str(web)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with Browser(tmp_path / "profile") as opened:
        yield opened


ROWS_JS = """[...document.querySelectorAll('table.targets tbody tr')].map(r =>
  [r.querySelector('.id').title, r.dataset.status])"""


def rows(browser: Browser, url: str) -> list[list[str]]:
    """(full target id, status) of every row the page shows, in order."""
    browser.open(url, 1400, headers=AUTH)
    found: list[list[str]] = browser.evaluate(ROWS_JS)
    return found


def test_table_renders_every_target(browser: Browser, page_url: str) -> None:
    """All eight targets appear with their shown status."""
    assert sorted(rows(browser, page_url)) == [
        [LONG_ID, "InProgress"], ["cloud-9f8e7d6c", "Exited"], [LONG_SESSION, "Idle"],
        ["room-42-subtitles", "InProgress"], ["t-a", "InProgress"], ["t-b", "Idle"],
        ["t-d", "NotFound"], ["t-e", "InProgress"]]


@pytest.mark.parametrize(("query", "expected"), [
    ("status=InProgress", {LONG_ID, "t-a", "t-e", "room-42-subtitles"}),
    ("label=team%3Dlive", {LONG_ID, "t-a"}),
    ("region=ap-singapore", {"t-e", "cloud-9f8e7d6c"}),
    ("app=1400000001", {"room-42-subtitles"}),
    ("api=cloud_transcription", {"cloud-9f8e7d6c"}),
    ("q=INTERNALERROR", {"t-e"}),
    ("status=InProgress&label=team%3Dlive&q=fedcba", {LONG_ID}),
])
def test_filters_come_from_the_url(browser: Browser, page_url: str, query: str,
                                   expected: set[str]) -> None:
    """Each filter in the query string keeps exactly the matching targets."""
    assert {row[0] for row in rows(browser, f"{page_url}?{query}")} == expected


def test_sort_by_column_and_direction(browser: Browser, page_url: str) -> None:
    """sort=status orders rows by status; order=desc reverses it."""
    up = [status for _, status in rows(browser, page_url + "?sort=status")]
    assert up == sorted(up) and up[0] == "Exited"
    down = [status for _, status in rows(browser, page_url + "?sort=status&order=desc")]
    assert down == sorted(up, reverse=True)


def test_header_links_keep_the_filters(browser: Browser, page_url: str) -> None:
    """Clicking a column heading sorts and keeps the filters of the shared view."""
    browser.open(page_url + "?label=team%3Dlive", 1400, headers=AUTH)
    browser.evaluate("document.querySelector('th a[href*=\"sort=target\"]').click()")
    browser.wait_event("Page.loadEventFired")
    assert browser.evaluate("location.search") == "?label=team%3Dlive&sort=target"
    assert [r[0] for r in browser.evaluate(ROWS_JS)] == [LONG_ID, "t-a"]


LAYOUT_JS = """({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
  tableScroll: document.querySelector('table.targets').scrollWidth,
  tableClient: document.querySelector('table.targets').clientWidth,
  wrapScroll: document.querySelector('.tablewrap').scrollWidth,
  wrapClient: document.querySelector('.tablewrap').clientWidth,
  labelTitles: [...document.querySelectorAll('.lbl')].map(l => l.title),
  sticky: getComputedStyle(document.querySelector('table.targets th')).position,
  js: document.documentElement.classList.contains('js'),
  copyShown: getComputedStyle(document.querySelector('button.copy')).display,
  strips: document.querySelectorAll('svg.strip rect').length,
  inlineStyle: document.querySelectorAll('[style]').length})"""


@pytest.mark.parametrize(("width", "height"), [(1400, 900), (390, 844)])
def test_layout_fits_and_screenshot(browser: Browser, page_url: str, width: int,
                                    height: int) -> None:
    """Nothing overflows horizontally, the targets table included with long ids and labels
    (shortened, the full text on hover); stylesheet and script load under the CSP; a full-page
    screenshot is kept in tests/artifacts/."""
    browser.open(page_url, width, height, headers=AUTH)
    layout = browser.evaluate(LAYOUT_JS)
    assert layout["scroll"] <= layout["inner"], layout
    if width > 760:  # below, the table is a list of cards
        assert layout["tableScroll"] <= layout["tableClient"], layout
        assert layout["wrapScroll"] <= layout["wrapClient"], layout
    assert f"customer={LONG_LABELS['customer']}" in layout["labelTitles"], layout
    assert layout["js"] and layout["copyShown"] != "none", layout
    assert layout["strips"] > 6 and layout["inlineStyle"] == 0, layout
    if width > 760:
        assert layout["sticky"] == "sticky", layout
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"landing-{width}.png"
    browser.screenshot(shot)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


@pytest.fixture(scope="module")
def axe_source() -> str:
    """axe-core's browser bundle, installed from npm into tests/.axe/ when missing."""
    if not AXE_JS.exists():
        done = subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund",
                               "--prefix", str(AXE_DIR), f"axe-core@{AXE_VERSION}"],
                              capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, f"npm install axe-core failed: {done.stderr[-2000:]}"
    return AXE_JS.read_text()


AXE_RUN = """axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>
  ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.html)})))"""


@pytest.mark.parametrize("width", [1400, 390])
def test_accessibility_has_no_serious_violations(browser: Browser, page_url: str,
                                                 axe_source: str, width: int) -> None:
    """axe-core, injected through DevTools, reports no serious or critical violation."""
    browser.open(page_url + "?sort=age", width, headers=AUTH)
    browser.evaluate(axe_source)
    violations = browser.evaluate(AXE_RUN)
    print(f"axe at {width}px: {violations}")
    assert [v for v in violations if v["impact"] in ("serious", "critical")] == []
