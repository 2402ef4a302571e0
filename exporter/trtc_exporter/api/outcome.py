"""The record of one poll, shared by the client (which makes it) and polling (which applies it).

In its own module so that polling state and the poller need the record, not the client.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtc_exporter.response import ApiFailure, TaskStatus


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one poll produced: the last attempt's result plus what it cost.

    ``attempts`` counts the first try and every retry; ``latency`` is the summed time of all
    attempts in seconds (monotonic clock, waits for budget tokens excluded).
    """

    result: TaskStatus | ApiFailure
    attempts: int
    latency: float
