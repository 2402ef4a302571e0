"""Waiting in tests for another thread: poll a predicate until it holds or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable


def until(predicate: Callable[[], object], seconds: float = 5.0) -> bool:
    """True as soon as ``predicate()`` is truthy, polled every 2 ms; False after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.002)
    return False
