"""Process signals: SIGTERM/SIGINT stop, SIGHUP reloads. One home, used by the serve loop.

Takes plain callables so that nothing here depends on the exporter or the web layer.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("trtc_exporter")


def install_signals(reload: Callable[[], object], stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop``; SIGHUP runs ``reload`` in a thread of its own.

    The reload runs off the signal handler so a slow config read never blocks the main thread.
    """

    def on_stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    def on_hup(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=reload, name="sighup-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_hup)
