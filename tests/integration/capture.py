"""Count API request starts from packet timestamps on loopback, not from a Python process's clock.

``PostCapture(port)`` runs ``tshark`` on ``lo`` with a kernel (BPF) capture filter that keeps only
TCP segments sent *to* ``port`` whose payload begins with ``POST / H`` — the first bytes of an API
request line (the simulator's control endpoints live under ``/_sim/`` and do not match). Each kept
segment is one request start, stamped by the kernel when the client sent it. This is robust to:

- keep-alive: every request on a reused connection starts a new segment (our clients do not
  pipeline: they wait for the answer before sending the next request);
- segmentation: a request split over several segments has only one that begins with the request
  line; the body and later header segments never match.

``max_in_window(times)`` is the most starts in any sliding half-open window ``(t - 1 s, t]`` —
the same definition as the simulator's ``max_in_window`` — so the two can be compared directly.

Used by ``bench/capture_faults.py`` and ``tests/integration/test_budget_capture.py``; needs
``tshark`` (Debian package ``tshark``) and the right to capture on ``lo`` (root, or membership of
the ``wireshark`` group).
"""

from __future__ import annotations

import bisect
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

TSHARK = "tshark"
READY_TIMEOUT = 15.0
"""Seconds to wait for tshark to report that the capture is running."""

# "POST" and " / H" as 32-bit words at the start of the TCP payload (offset = data offset * 4).
_PAYLOAD = "tcp[((tcp[12:1] & 0xf0) >> 2):4]"
_PAYLOAD_NEXT = "tcp[((tcp[12:1] & 0xf0) >> 2) + 4:4]"


def tshark_available() -> bool:
    """Whether the ``tshark`` binary is on PATH (capture rights are checked by ``start``)."""
    return shutil.which(TSHARK) is not None


def capture_filter(port: int) -> str:
    """The BPF filter: segments to ``port`` whose payload starts with ``POST / H``."""
    return f"tcp dst port {port} and {_PAYLOAD} = 0x504f5354 and {_PAYLOAD_NEXT} = 0x202f2048"


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most timestamps (seconds) inside any sliding half-open window ``(t - window, t]``.

    The maximum over all windows is reached by a window ending at a timestamp, so counting at
    each one is exact. Input order does not matter.
    """
    ordered = sorted(times)
    best = 0
    for i, t in enumerate(ordered):
        first = bisect.bisect_right(ordered, t - window, 0, i + 1)
        best = max(best, i + 1 - first)
    return best


class CaptureError(RuntimeError):
    """tshark could not start or capture (missing rights, no ``lo``, ...)."""


class PostCapture:
    """tshark on ``lo`` recording the kernel timestamp of each API request start to ``port``.

    Use as a context manager or ``start()``/``stop()``; ``stop()`` returns the timestamps (epoch
    seconds, ascending) and sets ``dropped`` to the packets tshark reported as dropped.
    """

    def __init__(self, port: int, interface: str = "lo") -> None:
        self.port = port
        self.interface = interface
        self.times: list[float] = []
        self.dropped = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="trtc-capture-"))

    def start(self) -> PostCapture:
        """Start tshark and wait until it captures; raises CaptureError if it cannot."""
        out, err = (self._dir / "out.txt").open("wb"), (self._dir / "err.txt").open("wb")
        self._proc = subprocess.Popen(
            [TSHARK, "-i", self.interface, "-n", "-l", "-f", capture_filter(self.port),
             "-T", "fields", "-e", "frame.time_epoch"],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL)  # fmt: skip
        out.close()
        err.close()
        deadline = time.monotonic() + READY_TIMEOUT
        while "Capturing on" not in self._stderr():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._kill()
                raise CaptureError(f"tshark did not start capturing: {self._stderr()[-500:]}")
            time.sleep(0.05)
        return self

    def stop(self) -> list[float]:
        """Stop tshark (SIGINT, so it flushes) and return the request-start timestamps."""
        if self._proc is not None:
            time.sleep(0.2)  # let the last packets reach tshark before it stops
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._kill()
            self._proc = None
            text = (self._dir / "out.txt").read_text()
            self.times = sorted(float(line) for line in text.split() if line)
            self.dropped = _dropped(self._stderr())
            shutil.rmtree(self._dir, ignore_errors=True)
        return self.times

    def __enter__(self) -> PostCapture:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stderr(self) -> str:
        return (self._dir / "err.txt").read_text(errors="replace")

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def _dropped(stderr: str) -> int:
    """Packets tshark says it dropped (``N packets dropped``), 0 when it reports none."""
    for line in stderr.splitlines():
        words = line.split()
        if len(words) >= 3 and words[1:3] == ["packets", "dropped"] and words[0].isdigit():
            return int(words[0])
    return 0
