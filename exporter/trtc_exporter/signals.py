"""Process signals: SIGTERM/SIGINT stop, SIGHUP reloads. One home, used by the CLI and serve loop.

Installed first thing in ``main``: as PID 1 in a container a signal without a handler is ignored
for good, so a SIGTERM that arrived while a large config was still loading used to be lost. A stop
requested during start-up interrupts the slow work at once (:class:`StopDuringStartup`); once the
exporter runs, a stop sets an event the serve loop waits on. Takes plain callables so that nothing
here depends on the exporter or the web layer.

The handlers take no lock that the main thread may hold: a Python handler runs in the main
thread between two of its bytecodes, so one that set ``stop`` itself would wait forever for the
event's lock if the signal landed while the main thread held it (entering or leaving
``stop.wait()``; a second Ctrl-C during the first's wake-up). The interpreter writes each
signal's number to a pipe (``signal.set_wakeup_fd``, at the C level, before any handler runs)
and a ``signals`` thread reading it sets ``stop`` and starts reloads.
"""

from __future__ import annotations

import logging
import os
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

    _wakeup = -1  # the write end of the pipe installed last (one wakeup fd per process)

    def __init__(self) -> None:
        self.stop = threading.Event()
        self._reload: Callable[[], object] | None = None

    def install(self) -> Signals:
        """Install the handlers and start the ``signals`` thread (main thread only; elsewhere a
        no-op); returns self. The process's signal wakeup fd becomes this one's pipe."""
        if threading.current_thread() is threading.main_thread():
            read, write = os.pipe()
            os.set_blocking(write, False)  # the interpreter never blocks writing a signal
            threading.Thread(target=self._watch, args=(read,), name="signals",
                             daemon=True).start()
            previous = signal.set_wakeup_fd(write)
            if previous != -1 and previous == Signals._wakeup:
                os.close(previous)  # installed again (tests): the previous thread reads EOF
            Signals._wakeup = write
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)
            signal.signal(signal.SIGHUP, self._on_hup)
        return self

    def running(self, reload: Callable[[], object]) -> None:
        """Start-up is over: from now on a stop only sets ``stop``, SIGHUP runs ``reload``."""
        self._reload = reload

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        # logging's locks are reentrant: a record the main thread was writing cannot block it
        name = signal.Signals(signum).name
        if self._reload is None:
            log.info("received %s during start-up; exiting", name)
            raise StopDuringStartup(name)
        log.info("received %s; shutting down", name)

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        if self._reload is None:
            log.info("received SIGHUP during start-up; the configuration is being read anyway")

    def _watch(self, read: int) -> None:
        """The ``signals`` thread: acts on each signal number the interpreter writes to the
        pipe, at once (a SIGHUP read before :meth:`running` is dropped, as its handler logs)."""
        try:
            while data := os.read(read, 64):
                for signum in data:
                    try:
                        self._act(signum)
                    except Exception:  # e.g. no thread for a reload: later stops still count
                        log.exception("could not act on signal %d", signum)
        finally:
            os.close(read)

    def _act(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.stop.set()
        elif signum == signal.SIGHUP and (reload := self._reload) is not None:
            # its own thread, so a slow config read never delays a stop behind it
            threading.Thread(target=reload, name="sighup-reload", daemon=True).start()

