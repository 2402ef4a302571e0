"""Signals reach the exporter process at any point of its start-up (issue 15 item 21)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.harness import Exporter, dump, wait_for

pytestmark = pytest.mark.integration


def _catches_sigterm(pid: int) -> bool:
    """True once the process has a SIGTERM handler (bit 15 of SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def _exit_code(exporter: Exporter) -> int:
    """Wait (5 s at most) for the process to end after the one SIGTERM the test sent: a
    second signal from the harness's own stop() would race the shutdown."""
    try:
        exporter.proc.wait(5.0)
    finally:
        code = exporter.stop()  # a no-op when it has exited; kills it when it has not
    return code


def test_sigterm_while_start_up_is_blocked_exits_promptly(tmp_path: Path) -> None:
    """SIGTERM while start-up is stuck reading a target file (a FIFO nobody writes, as a hung
    network mount would be): the process exits 0 within 5 s and never serves."""
    fifo = tmp_path / "targets.yml"
    os.mkfifo(fifo)
    exporter = Exporter(tmp_path, {"api": {"endpoint": "http://127.0.0.1:9"},
                                   "target_files": [str(fifo)]}, wait_ready=False)
    wait_for(lambda: _catches_sigterm(exporter.proc.pid), 10, "the SIGTERM handler")
    time.sleep(0.5)  # well inside the blocked read: nothing can finish start-up meanwhile
    exporter.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = _exit_code(exporter)
    assert time.monotonic() - sent < 5.0, dump(exporter)
    assert code == 0, dump(exporter)
    assert "during start-up" in exporter.output(), dump(exporter)
    assert "listening on" not in exporter.output()


def test_sigterm_while_loading_a_large_config_exits_promptly(tmp_path: Path) -> None:
    """SIGTERM as soon as the handler exists, while 10 000 targets are being read (or just
    after: the C loader reads them in a fraction of a second): the process exits 0 within 5 s
    (as PID 1 it used to be ignored for good)."""
    targets = [{"task_id": f"task-{i:05d}-{'x' * 24}", "labels": {"team": f"t{i % 7}"}}
               for i in range(10_000)]
    exporter = Exporter(tmp_path, {"api": {"endpoint": "http://127.0.0.1:9"},
                                   "targets": targets}, wait_ready=False)
    assert len(yaml.safe_load(exporter.config_path.read_text())["targets"]) == 10_000
    wait_for(lambda: _catches_sigterm(exporter.proc.pid), 10, "the SIGTERM handler")
    exporter.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    code = _exit_code(exporter)
    assert time.monotonic() - sent < 5.0, dump(exporter)
    assert code == 0, dump(exporter)
