"""Process signals: SIGTERM/SIGINT stop, SIGHUP reloads. One home, used by the CLI and serve loop.

Installed first thing in ``main``: as PID 1 in a container a signal without a handler is ignored
for good, so a SIGTERM that arrived while a large config was still loading used to be lost. A stop
requested during start-up interrupts the slow work at once (:class:`StopDuringStartup`); once the
exporter runs, a stop sets an event the serve loop waits on. Takes plain callables so that nothing
here depends on the exporter or the web layer.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("trtc_exporter")


class StopDuringStartup(BaseException):
    """SIGTERM or SIGINT arrived before the exporter was running. A BaseException, so that no
    ``except Exception`` in the start-up path can swallow it."""


class Signals:
    """The process's signal handlers; ``stop`` is set by SIGTERM and SIGINT.

    Until :meth:`running` is called a stop also raises :class:`StopDuringStartup` in the main
    thread (start-up has nothing to clean up), and SIGHUP is ignored with a log line (the
    configuration is being read anyway).
    """

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._reload: Callable[[], object] | None = None

    def install(self) -> Signals:
        """Install the handlers (main thread only; elsewhere a no-op); returns self."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)
            signal.signal(signal.SIGHUP, self._on_hup)
        return self

    def running(self, reload: Callable[[], object]) -> None:
        """Start-up is over: from now on a stop only sets ``stop``, SIGHUP runs ``reload``."""
        self._reload = reload

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.stop.set()
        if self._reload is None:
            log.info("received %s during start-up; exiting", name)
            raise StopDuringStartup(name)
        log.info("received %s; shutting down", name)

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        reload = self._reload
        if reload is None:
            log.info("received SIGHUP during start-up; the configuration is being read anyway")
            return
        # off the signal handler, so a slow config read never blocks the main thread
        threading.Thread(target=reload, name="sighup-reload", daemon=True).start()

