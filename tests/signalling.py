"""Signals in tests: raise one while the main thread holds an event's lock."""

from __future__ import annotations

import signal
import threading


def handler_waited_for_lock(event: threading.Event, signum: int = signal.SIGTERM) -> bool:
    """Raise ``signum`` in this (main) thread while it holds ``event``'s lock, as it does
    entering or leaving ``event.wait()``; True when the handler waited for that lock. A handler
    that sets ``event`` itself would wait for ever: a helper frees the lock after 2 s (a plain
    Lock: another thread may release it), and the answer is True."""
    held = event._cond  # type: ignore[attr-defined]  # the Condition of Event.wait
    returned, rescued = threading.Event(), threading.Event()

    def rescue() -> None:
        if not returned.wait(2.0):
            rescued.set()
            held.release()

    held.acquire()
    helper = threading.Thread(target=rescue)
    helper.start()
    signal.raise_signal(signum)
    returned.set()
    helper.join()
    if not rescued.is_set():
        held.release()
    return rescued.is_set()
