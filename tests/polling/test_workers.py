"""A lane's workers: the most recently idle takes the next job, threads start as jobs need them."""

from __future__ import annotations

import threading

import pytest

from tests.waiting import until
from trtc_exporter.polling.workers import Workers


class Recorder:
    """Jobs are names; a job waits for its gate when one is set. Records who ran what."""

    def __init__(self) -> None:
        self.gates: dict[str, threading.Event] = {}
        self.ran: list[tuple[str, str]] = []  # (job, thread name)
        self.lock = threading.Lock()

    def __call__(self, job: str) -> None:
        gate = self.gates.get(job)
        if gate is not None:
            assert gate.wait(5.0)
        with self.lock:
            self.ran.append((job, threading.current_thread().name))

    def thread_of(self, job: str) -> str:
        return next(name for ran, name in self.ran if ran == job)


def _idle(workers: Workers[str]) -> int:
    return len(workers._idle)


def test_nothing_runs_before_start_and_the_jobs_waiting_run_after() -> None:
    recorder = Recorder()
    workers = Workers[str](recorder, 4, "w")
    workers.submit("a")
    workers.submit("b")
    assert workers.threads == [] and recorder.ran == []
    workers.start()
    assert until(lambda: len(recorder.ran) == 2)
    workers.close()


def test_jobs_one_at_a_time_are_run_by_one_thread() -> None:
    """Each job done before the next comes: one thread does them all (a FIFO queue woke each
    of the lane's 30 workers in turn)."""
    recorder = Recorder()
    workers = Workers[str](recorder, 30, "w")
    workers.start()
    for i in range(20):
        workers.submit(f"j{i}")
        assert until(lambda i=i: len(recorder.ran) == i + 1 and _idle(workers) == 1)
    assert len(workers.threads) == 1
    assert {name for _, name in recorder.ran} == {"w-0"}
    workers.close()


def test_the_worker_idle_last_takes_the_next_job() -> None:
    """Three jobs in flight need three threads; they finish in the order c, a, b: the next
    job goes to b's thread (idle last), the one after to a's."""
    recorder = Recorder()
    gates = {job: threading.Event() for job in "abc"}
    recorder.gates.update(gates)
    workers = Workers[str](recorder, 30, "w")
    workers.start()
    for job in "abc":
        workers.submit(job)
    assert until(lambda: len(workers.threads) == 3)
    for done, job in enumerate("cab", start=1):
        gates[job].set()
        assert until(lambda done=done: _idle(workers) == done)
    recorder.gates["next"] = threading.Event()  # keeps b's thread busy while "after" comes
    workers.submit("next")
    workers.submit("after")
    recorder.gates["next"].set()
    assert until(lambda: len(recorder.ran) == 5)
    assert recorder.thread_of("next") == recorder.thread_of("b")
    assert recorder.thread_of("after") == recorder.thread_of("a")
    assert len(workers.threads) == 3
    workers.close()


def test_beyond_most_busy_workers_jobs_wait_in_order() -> None:
    recorder = Recorder()
    gate = threading.Event()
    recorder.gates.update({"a": gate, "b": gate})
    workers = Workers[str](recorder, 2, "w")
    workers.start()
    for job in "abcd":
        workers.submit(job)
    assert until(lambda: len(workers.threads) == 2 and len(workers._queued) == 2)
    assert list(workers._queued) == ["c", "d"] and recorder.ran == []
    gate.set()
    assert until(lambda: len(recorder.ran) == 4)
    assert len(workers.threads) == 2
    workers.close()


def test_close_ends_the_workers_and_returns_the_jobs_no_worker_took() -> None:
    recorder = Recorder()
    gate = threading.Event()
    recorder.gates["busy"] = gate
    workers = Workers[str](recorder, 1, "w")
    workers.start()
    workers.submit("busy")
    assert until(lambda: len(workers.threads) == 1 and not workers._queued)
    workers.submit("left")
    assert workers.close() == ["left"]
    workers.submit("after close")
    gate.set()
    for thread in workers.threads:
        thread.join(5.0)
        assert not thread.is_alive()
    assert [job for job, _ in recorder.ran] == ["busy"]


def test_a_job_that_raises_does_not_cost_the_lane_its_worker(
        caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    def run(job: str) -> None:
        if job == "bad":
            raise RuntimeError("secret detail")
        ran.append(job)

    workers = Workers[str](run, 1, "w")
    workers.start()
    workers.submit("bad")
    workers.submit("good")
    assert until(lambda: ran == ["good"])
    assert "RuntimeError" in caplog.text and "secret detail" not in caplog.text
    workers.close()
