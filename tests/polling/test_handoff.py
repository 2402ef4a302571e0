"""The lane hand-off gives each item to the most recently idle worker, and queues items in order
while every worker is busy."""

from __future__ import annotations

import os
import queue
import threading

from trtc_exporter.polling.handoff import Handoff


def _park(handoff: Handoff[str], got: list[str], name: str) -> threading.Thread:
    """Start a worker that takes one item, and return once it is parked as idle."""
    slot: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    before = handoff.idle

    def work() -> None:
        item = handoff.get(slot)
        got.append(f"{name}:{item}")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while handoff.idle == before:  # parked within a few scheduler turns; no timed sleep
        os.sched_yield()
    return thread


def test_items_wait_in_order_while_no_worker_is_idle() -> None:
    """Items put with no idle worker come out first in, first out, None included."""
    handoff: Handoff[str] = Handoff()
    for item in ("a", "b", None):
        handoff.put(item)
    slot: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    assert [handoff.get(slot), handoff.get(slot), handoff.get(slot)] == ["a", "b", None]
    assert handoff.idle == 0


def test_the_last_idle_worker_gets_the_next_item() -> None:
    """With two workers parked, the one that went idle last is handed the first item."""
    handoff: Handoff[str] = Handoff()
    got: list[str] = []
    first = _park(handoff, got, "first")
    last = _park(handoff, got, "last")
    handoff.put("x")
    last.join(5)
    assert got == ["last:x"]
    handoff.put("y")
    first.join(5)
    assert got == ["last:x", "first:y"]
    assert handoff.idle == 0
