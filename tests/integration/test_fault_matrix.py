"""The installed exporter against every simulator fault at once, one faulty task per fault kind.

One simulator and one exporter run for about half a minute: healthy tasks poll beside one task per
fault (the faults are per task, so each hits only its own task), plus a second exporter pointed at
a closed port. The module fixture records scrapes, RSS samples and the target table; each test
then checks one property of that run, and each fault kind is a parametrized case.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.integration.harness import Exporter, Simulator, dump, free_port, wait_for

pytestmark = pytest.mark.integration
APP = 1400000001
TIMEOUT = 1.0
RUN_SECONDS = 20.0
RSS_GROWTH_LIMIT_KB = 20 * 1024
FOREVER = {"idle": 0, "preparing": 0, "in_progress": "forever"}


@dataclass(frozen=True)
class Fault:
    """A simulator fault on one task, the code the exporter must count, the simulator's code."""

    spec: dict[str, Any]
    code: str | None  # None: not an error (the answer parses, the status is Unknown)
    sim_code: str
    api: str = "ai_transcription"
    shown_code: str | None = None  # the code /api/v1/targets shows, when not ``code``


FAULTS = {
    "http-500-html": Fault({"kind": "http_error", "status": 500}, "HTTP5xx", "http_500"),
    "http-502-html": Fault({"kind": "http_error", "status": 502}, "HTTP5xx", "http_502"),
    "http-503-html": Fault({"kind": "http_error", "status": 503}, "HTTP5xx", "http_503"),
    "connection-reset": Fault({"kind": "connection_reset"}, "ConnectionError",
                              "connection_reset"),
    "read-timeout": Fault({"kind": "timeout", "seconds": 3}, "Timeout", "timeout"),
    "slow-trickle": Fault({"kind": "trickle_body", "chunk_bytes": 8, "interval": 0.25},
                          "Timeout", "trickle_body"),
    "malformed-json": Fault({"kind": "malformed_json"}, "InvalidResponse", "malformed_json"),
    "missing-status": Fault({"kind": "missing_fields", "fields": ["Status"]}, "InvalidResponse",
                            "missing_fields"),
    "missing-response": Fault({"kind": "missing_fields", "fields": ["Response"]},
                              "InvalidResponse", "missing_fields"),
    "wrong-types": Fault({"kind": "wrong_types"}, "InvalidResponse", "wrong_types"),
    "huge-body": Fault({"kind": "huge_body", "bytes": 2_000_000}, "InvalidResponse",
                       "huge_body"),
    "unknown-status": Fault({"kind": "unknown_status", "status": "Suspended"}, None,
                            "unknown_status"),
    "unknown-error-code": Fault({"kind": "unknown_error_code", "code": "MadeUp.NeverSeenCode"},
                                "Other", "MadeUp.NeverSeenCode",
                                shown_code="MadeUp.NeverSeenCode"),
    "internal-error": Fault({"kind": "internal_error"}, "InternalError", "InternalError"),
    "auth-failure": Fault({"kind": "auth_failure"}, "AuthFailure.SignatureFailure",
                          "AuthFailure.SignatureFailure"),
    "auth-secret-id-not-found": Fault({"kind": "auth_failure",
                                       "code": "AuthFailure.SecretIdNotFound"},
                                      "AuthFailure.SecretIdNotFound",
                                      "AuthFailure.SecretIdNotFound"),
    # Throttling cuts the whole action's budget, so the storm runs on the 2.0 lane only.
    "request-limit-storm": Fault({"kind": "request_limit_storm"}, "RequestLimitExceeded",
                                 "RequestLimitExceeded", api="cloud_transcription"),
}
HEALTHY = {"ok-1": "InProgress", "ok-2": "InProgress", "ok-idle": "Idle",
           "ok-slow": "InProgress", "c-ok": "InProgress"}


def task(task_id: str, api: str = "ai_transcription", phases: dict[str, Any] | None = None,
         faults: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"task_id": task_id, "api": api, "sdk_app_id": APP, "phases": phases or FOREVER,
            "faults": faults or []}


def target(task_id: str, api: str = "ai_transcription") -> dict[str, Any]:
    return {"task_id": task_id, "api": api, "sdk_app_id": APP}


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def error_counts(exp: Exporter) -> Counter[str]:
    counts: Counter[str] = Counter()
    for name, labels, value in exp.samples():
        if name == "trtc_api_errors_total":
            counts[labels["code"]] += int(value)
    return counts


@dataclass
class Run:
    """What the module's one run observed."""

    sim: Simulator
    exp: Exporter
    refused: Exporter
    scrape_seconds: list[float] = field(default_factory=list)
    scrape_codes: set[int] = field(default_factory=set)
    rss: list[int] = field(default_factory=list)
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)
    truth: dict[str, str] = field(default_factory=dict)
    served: dict[str, int] = field(default_factory=dict)
    counted: Counter[str] = field(default_factory=Counter)
    alive: bool = False

    def logs(self) -> str:
        return dump(self.exp, self.refused, self.sim)


def scrape(exp: Exporter, run: Run) -> None:
    started = time.monotonic()
    response = requests.get(exp.url + "/metrics", timeout=5)
    run.scrape_seconds.append(time.monotonic() - started)
    run.scrape_codes.add(response.status_code)


def observe(run: Run) -> None:
    """Scrape twice a second and sample RSS every 2 s for RUN_SECONDS, then read the results."""
    end = time.monotonic() + RUN_SECONDS
    next_rss = 0.0
    while time.monotonic() < end:
        scrape(run.exp, run)
        scrape(run.refused, run)
        if time.monotonic() >= next_rss:
            run.rss.append(rss_kb(run.exp.proc.pid))
            next_rss = time.monotonic() + 2.0
        time.sleep(0.5)
    run.rss.append(rss_kb(run.exp.proc.pid))
    rows = requests.get(run.exp.url + "/api/v1/targets", timeout=5).json()["data"]
    run.rows = {row["task_id"]: row for row in rows}
    run.shown, run.truth = run.exp.statuses(), run.sim.truth()
    run.alive = run.exp.proc.poll() is None and run.refused.proc.poll() is None


def settle_counts(run: Run) -> None:
    """Switch the faults off, let in-flight polls end (counts still for 1 s), read both sides."""
    run.sim.control("DELETE", "faults")
    time.sleep(TIMEOUT + 0.5)
    run.counted, deadline = error_counts(run.exp), time.monotonic() + 10.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        counted = error_counts(run.exp)
        if counted == run.counted:
            break
        run.counted = counted
    run.served = run.sim.control("GET", "stats")["by_code"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """Starts the pair (and the refused exporter), warms up, observes, settles, stops."""
    tmp = tmp_path_factory.mktemp("matrix")
    tasks = [task("ok-1"), task("ok-2"), task("ok-idle", phases={"idle": "forever"}),
             task("ok-slow", faults=[{"kind": "latency", "seconds": 0.3}]),
             task("c-ok", api="cloud_transcription",
                  phases={"idle": 0, "in_progress": "forever"})]
    tasks += [task(f"f-{name}", api=f.api, faults=[f.spec],
                   phases=FOREVER if f.api == "ai_transcription" else
                   {"idle": 0, "in_progress": "forever"}) for name, f in FAULTS.items()]
    sim = Simulator(tmp, {"tasks": tasks})
    targets = [target(t["task_id"], t["api"]) for t in tasks]
    api = {"endpoint": sim.url, "timeout": f"{TIMEOUT:g}s", "max_retries": 0}
    (tmp / "main").mkdir()
    (tmp / "refused").mkdir()
    exp = Exporter(tmp / "main", {"api": api, "poll_interval": "2s", "targets": targets},
                   wait_ready=False)
    closed = {**api, "endpoint": f"http://127.0.0.1:{free_port()}"}
    refused = Exporter(tmp / "refused", {"api": closed, "poll_interval": "1s",
                                         "targets": [target("ok-1")]})
    result = Run(sim, exp, refused)
    try:
        # not listening yet counts as not ready (wait_for): on a loaded machine start-up of the
        # exporter started first may still be under way
        wait_for(lambda: requests.get(exp.url + "/-/ready", timeout=5).status_code == 200, 30,
                 "the fault matrix exporter to be ready")
        time.sleep(3.0)  # warm-up: every task polled at least once more, pools and caches filled
        observe(result)
        settle_counts(result)
        yield result
    finally:
        for proc in (exp, refused, sim):
            proc.stop()


def test_exporters_keep_running_and_metrics_answer_within_a_second(run: Run) -> None:
    """Under every fault both exporters stay up and each /metrics scrape is 200 within 1 s."""
    assert run.alive, run.logs()
    assert run.scrape_codes == {200}
    assert len(run.scrape_seconds) >= 2 * RUN_SECONDS
    assert max(run.scrape_seconds) < 1.0, sorted(run.scrape_seconds)[-5:]


@pytest.mark.parametrize("task_id", sorted(HEALTHY))
def test_healthy_targets_are_unaffected(run: Run, task_id: str) -> None:
    """A healthy task beside the faulty ones shows the simulator's status and a good last poll."""
    assert run.truth[task_id] == HEALTHY[task_id]
    assert run.shown[task_id] == HEALTHY[task_id], run.logs()
    row = run.rows[task_id]
    assert (row["poll_success"], row["last_error_code"]) == (True, None)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_is_recorded_under_its_code(run: Run, name: str) -> None:
    """The faulty task's last poll failed with the fault's code, and that code was counted."""
    fault, row = FAULTS[name], run.rows[f"f-{name}"]
    assert run.served.get(fault.sim_code, 0) >= 3, run.served  # polled again and again
    if fault.code is None:
        assert (row["status"], row["poll_success"]) == ("Unknown", True)
        return
    shown = fault.shown_code or fault.code
    assert (row["poll_success"], row["last_error_code"]) == (False, shown), row
    assert run.counted[fault.code] >= 3
    assert run.shown[f"f-{name}"] == "Unknown"  # never answered: no status is invented


@pytest.mark.parametrize("name", sorted(n for n, f in FAULTS.items() if f.code == "Timeout"))
def test_a_poll_never_takes_longer_than_the_timeout(run: Run, name: str) -> None:
    """A slow or trickling answer is abandoned at api.timeout, so it cannot hold a worker."""
    latency = run.rows[f"f-{name}"]["latency_seconds"]
    assert latency <= TIMEOUT + 0.5, f"{name}: the poll took {latency}s with a {TIMEOUT}s timeout"


def test_error_counters_equal_what_the_simulator_served(run: Run) -> None:
    """Per code, the exporter counted exactly as many errors as the simulator sent faults."""
    expected: Counter[str] = Counter()
    for fault in {(f.sim_code, f.code) for f in FAULTS.values() if f.code}:
        expected[fault[1]] += run.served.get(fault[0], 0)
    assert {code: run.counted[code] for code in expected} == dict(expected), run.served
    assert set(run.counted) <= set(expected), run.counted


def test_connection_refused_is_counted_as_connection_error(run: Run) -> None:
    """An exporter whose endpoint refuses connections counts ConnectionError and keeps polling."""
    first = error_counts(run.refused)["ConnectionError"]
    time.sleep(1.5)
    assert error_counts(run.refused)["ConnectionError"] > first >= RUN_SECONDS / 2
    assert set(error_counts(run.refused)) == {"ConnectionError"}
    assert run.refused.statuses() == {"ok-1": "Unknown"}


def test_memory_does_not_grow(run: Run) -> None:
    """After warm-up, RSS grows by less than 20 MB over the run (huge bodies, resets, timeouts)."""
    growth = max(run.rss) - run.rss[0]
    assert growth < RSS_GROWTH_LIMIT_KB, f"RSS samples (kB): {run.rss}"
