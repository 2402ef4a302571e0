"""Concurrent scrapes of one format share one rendering; a failed rendering is not shared."""

from __future__ import annotations

import threading

import pytest

from trtc_exporter.web.sharing import Shared


class _Watched(threading.Event):
    """An event that says when someone starts waiting on it."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting = threading.Event()

    def wait(self, timeout: float | None = None) -> bool:
        self.waiting.set()
        return super().wait(timeout)


def _watch(shared: Shared[object] | Shared[list[bytes]] | Shared[str], key: str) -> _Watched:
    """Replace the in-flight call's done event for ``key`` by a watched one."""
    watched = _Watched()
    shared._flights[key].done = watched
    return watched


def _start(target: object) -> threading.Thread:
    thread = threading.Thread(target=target)  # type: ignore[arg-type]
    thread.start()
    return thread


def test_a_call_during_a_computation_gets_its_result() -> None:
    """The second caller of the same key waits for the first and gets its result, uncomputed."""
    shared: Shared[list[bytes]] = Shared()
    release, entered = threading.Event(), threading.Event()
    calls: list[str] = []
    results: list[list[bytes]] = []

    def slow() -> list[bytes]:
        calls.append("slow")
        entered.set()
        assert release.wait(5)
        return [b"body"]

    first = _start(lambda: results.append(shared.run("k", slow)))
    assert entered.wait(5)
    watched = _watch(shared, "k")
    second = _start(lambda: results.append(shared.run("k", lambda: calls.append("x") or [])))
    assert watched.waiting.wait(5)
    release.set()
    first.join(5)
    second.join(5)
    assert calls == ["slow"]
    assert results == [[b"body"], [b"body"]]


def test_other_keys_and_later_calls_compute_again() -> None:
    """Only a call in flight is shared: a later call, or another key, computes its own."""
    shared: Shared[int] = Shared()
    counter = iter(range(10))
    assert shared.run("a", lambda: next(counter)) == 0
    assert shared.run("a", lambda: next(counter)) == 1
    assert shared.run("b", lambda: next(counter)) == 2


def test_a_failed_computation_is_not_shared() -> None:
    """A waiter on a call that raised computes its own result; the error stays with the first."""
    shared: Shared[str] = Shared()
    release, entered = threading.Event(), threading.Event()
    errors: list[Exception] = []
    results: list[str] = []

    def broken() -> str:
        entered.set()
        assert release.wait(5)
        raise RuntimeError("render failed")

    def first_call() -> None:
        try:
            shared.run("k", broken)
        except RuntimeError as exc:
            errors.append(exc)

    first = _start(first_call)
    assert entered.wait(5)
    watched = _watch(shared, "k")
    second = _start(lambda: results.append(shared.run("k", lambda: "own")))
    assert watched.waiting.wait(5)
    release.set()
    first.join(5)
    second.join(5)
    assert [str(e) for e in errors] == ["render failed"]
    assert results == ["own"]


def test_nothing_stays_in_flight_after_an_error() -> None:
    """After a failure the key is free: the next call computes."""
    shared: Shared[str] = Shared()
    with pytest.raises(ValueError):
        shared.run("k", lambda: (_ for _ in ()).throw(ValueError("x")))
    assert shared.run("k", lambda: "ok") == "ok"
