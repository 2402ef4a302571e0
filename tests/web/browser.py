"""Drive Debian's headless Chromium over the DevTools protocol on a pipe (no extra library).

``--remote-debugging-pipe`` makes Chromium read commands from fd 3 and write answers and events
to fd 4, each JSON message ended by a NUL byte (Chrome DevTools Protocol). Evaluations through
``Runtime.evaluate`` are not subject to the page's Content-Security-Policy, which is how the test
injects axe-core into a page that forbids every script but its own.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
         "--hide-scrollbars", "--remote-debugging-pipe"]
TIMEOUT = 30.0


def _as_fds_3_and_4(read_end: int, write_end: int) -> None:
    """In the child: the pipe ends become fds 3 and 4 (via fds >= 10, so neither clobbers)."""
    high_read = fcntl.fcntl(read_end, fcntl.F_DUPFD, 10)
    high_write = fcntl.fcntl(write_end, fcntl.F_DUPFD, 10)
    os.dup2(high_read, 3)
    os.dup2(high_write, 4)


class Browser:
    """One headless Chromium with one page; ``with Browser(tmp) as b: b.open(url, 1400)``."""

    def __init__(self, profile: Path) -> None:
        if CHROMIUM is None:
            pytest.fail("chromium is not installed; run ./scripts/test, which installs it")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child must see the pipes as fds 3 and 4
        self._proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(3, 4), preexec_fn=lambda: _as_fds_3_and_4(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []
        self.session = ""

    def __enter__(self) -> Browser:
        target = self.call("Target.createTarget", {"url": "about:blank"}, to_page=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, to_page=False)
        self.session = attached["sessionId"]
        self.call("Page.enable")
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        with contextlib.suppress(RuntimeError, OSError, TimeoutError):  # gone: kill settles it
            self.call("Browser.close", to_page=False)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, params: dict[str, Any] | None = None, *,
             to_page: bool = True) -> dict[str, Any]:
        """Send one command (to the page's session unless ``to_page`` is False); its result."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method,
                                   "params": params or {}}
        if to_page:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            if "method" in answer:
                self._events.append(answer)

    def wait_event(self, method: str) -> dict[str, Any]:
        """The next event of this name (events seen earlier included)."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for event in self._events:
                if event["method"] == method:
                    self._events.remove(event)
                    return event
            message = self._read_message(deadline)
            if "method" in message:
                self._events.append(message)

    def open(self, url: str, width: int, height: int = 900,
             headers: dict[str, str] | None = None) -> None:
        """Load ``url`` in a ``width`` x ``height`` viewport and wait for its load event."""
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1,
                   "mobile": width < 600})
        if headers:
            self.call("Network.enable")
            self.call("Network.setExtraHTTPHeaders", {"headers": headers})
        self._events = [e for e in self._events if e["method"] != "Page.loadEventFired"]
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> None:
        """A PNG of the whole page (beyond the viewport) at ``path``."""
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
