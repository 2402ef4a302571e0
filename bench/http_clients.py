"""HTTP clients side by side: CPU per paced API request, the exporter's client against leaner ones.

A measurement spike for issue 16 (goal: <= 0.5x the official SDK loop's CPU per request). The
same signed DescribeAITranscription POST (TC3 signature from ``api/signing.py``, a fresh
timestamp each time, the answer's body read whole, its ``Date`` header taken and its JSON parsed
and checked) is sent through:

- ``sdk``: the naive loop over ``tencentcloud-sdk-python-trtc`` (``cpu.py``'s), the reference;
- ``exporter``: the product's ``TrtcClient.describe`` (``api/client.py`` + ``api/transport.py``:
  budget token, write report, metrics, skew, body cap, ``parse_response``; since the seventh
  round its exchange is ``api/exchange.py`` on httptools, ``http.client`` only connecting,
  docs/performance.md);
- ``urllib3``: bare ``urllib3.PoolManager().request`` (no project transport code: urllib3's
  floor with its URL and pool-key parsing), and ``urllib3-pool``: one ``HTTPConnectionPool``'s
  ``urlopen`` (the same without the manager's URL and pool-key work);
- ``pycurl`` (optional, bench only: ``pip install pycurl``; the fifth round's transport): one
  reused ``Curl`` handle (keep-alive), the body as ``POSTFIELDS``, a header list, the answer through
  ``WRITEFUNCTION``/``HEADERFUNCTION``; ``pycurl-hook``: the same with ``VERBOSE`` and a
  ``DEBUGFUNCTION`` that reports the write (what the budget needs);
- ``httpx`` (optional, bench only: ``pip install httpx``): one sync ``httpx.Client``;
- ``http.client``: one stdlib ``HTTPConnection`` kept alive.

Paced: every client in its own fresh process, one thread, at 19.6 req/s (``cpu.paced_cpu``, as
the SDK loop of ``cpu.py``) against one simulator on 127.0.0.1 (20 ms answers, no rate limit so
every answer is the same InProgress one); rounds interleaved, the median per client. Each round
also runs ``cpu.py``'s whole exporter process at full budget (``exporter process``: poller,
limiter, threads and all). Warm: all clients in this process back to back
(``cpu.back_to_back``). The table gives each client's ratio to the SDK loop and to
``exporter``, and, for the bare clients, ``exporter process - exporter + x``: an estimate of the
whole exporter with ``x`` in place of its client (the poller's share above the client kept). Also a
check that pycurl's debug hook reports the write before the answer: against an in-process
server that answers 200 ms after it has read the request.

    python bench/http_clients.py [--quick] [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import urllib3
from common import (
    ACTION,
    SECRET_ID,
    SECRET_KEY,
    Simulator,
    Workdir,
    latency_fault,
    log,
    save_json,
    scenario,
    stop_on_sigterm,
    task_id,
)
from cpu import (
    PACE,
    TARGETS,
    back_to_back,
    exporter_client,
    paced_cpu,
    sdk_client,
    side_by_side,
)

from trtc_exporter.api import signing
from trtc_exporter.api.client import VERSION, host_of

Call = Callable[[int], Any]
Request = tuple[bytes, dict[str, str]]
OPTIONAL = {"pycurl": "pycurl", "pycurl-hook": "pycurl", "httpx": "httpx"}
CLIENTS = ("sdk", "exporter", "urllib3", "urllib3-pool", "pycurl", "pycurl-hook", "httpx",
           "http.client")
PROCESS = "exporter process"  # the whole exporter at full budget (cpu.py's run), for the poller
HOOK_DELAY = 0.2  # the hook check's server answers this long after reading the request


# -- the same signed request for every bare client ----------------------------------------------
def signed(url: str) -> Callable[[int], Request]:
    """``build(i)``: the body and headers of task i's request, signed now (as the product signs)."""
    host = host_of(url)

    def build(i: int) -> Request:
        body = json.dumps({"TaskId": task_id(i % TARGETS)}).encode("utf-8")
        now = int(time.time())
        parts = signing.sign(secret_id=SECRET_ID, secret_key=SECRET_KEY, host=host,
                             payload=body, timestamp=now)
        return body, {"Content-Type": signing.CONTENT_TYPE, "Host": host,
                      "Authorization": parts.authorization, "X-TC-Action": ACTION,
                      "X-TC-Version": VERSION, "X-TC-Region": "ap-guangzhou",
                      "X-TC-Timestamp": str(now), "X-TC-Language": "en-US"}

    return build


def check(status: int, payload: bytes, date: str | None) -> dict[str, Any]:
    """The answer's Response object; RuntimeError on anything but a 200 success with a Date."""
    response: dict[str, Any] = json.loads(payload)["Response"]
    if status != 200 or "Error" in response or not date:
        raise RuntimeError(f"HTTP {status}: {response.get('Error')} (Date {date!r})")
    return response


# -- the clients: each ``make(url) -> call(i)`` -------------------------------------------------
def urllib3_client(url: str) -> Call:
    build, manager = signed(url), urllib3.PoolManager()

    def call(i: int) -> Any:
        body, headers = build(i)
        r = manager.request("POST", url + "/", body=body, headers=headers, retries=False,
                            redirect=False, timeout=6.0)
        return check(r.status, r.data, r.headers.get("Date"))

    return call


def urllib3_pool_client(url: str) -> Call:
    parts = urlsplit(url)
    build = signed(url)
    pool = urllib3.HTTPConnectionPool(parts.hostname or "", parts.port, retries=False,
                                      timeout=6.0)

    def call(i: int) -> Any:
        body, headers = build(i)
        r = pool.urlopen("POST", "/", body=body, headers=headers, redirect=False)
        return check(r.status, r.data, r.headers.get("Date"))

    return call


def http_client_client(url: str) -> Call:
    parts = urlsplit(url)
    build = signed(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=6.0)

    def call(i: int) -> Any:
        body, headers = build(i)
        conn.request("POST", "/", body, headers)
        r = conn.getresponse()
        return check(r.status, r.read(), r.getheader("Date"))

    return call


def httpx_client(url: str) -> Call:
    import httpx  # optional, bench only

    build, client = signed(url), httpx.Client(timeout=6.0)

    def call(i: int) -> Any:
        body, headers = build(i)
        r = client.post(url + "/", content=body, headers=headers)
        return check(r.status_code, r.content, r.headers.get("Date"))

    return call


class Curl:
    """One reused pycurl handle (keep-alive) posting signed requests; with ``on_written``, a
    debug hook calls it once per request when libcurl reports the whole body sent."""

    def __init__(self, url: str, on_written: Callable[[], None] | None = None) -> None:
        import pycurl  # optional, bench only

        self.pycurl = pycurl
        self.build = signed(url)
        self.chunks: list[bytes] = []
        self.lines: list[bytes] = []
        self.curl = curl = pycurl.Curl()
        curl.setopt(pycurl.URL, url + "/")
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.TIMEOUT_MS, 6000)
        curl.setopt(pycurl.WRITEFUNCTION, self.chunks.append)
        curl.setopt(pycurl.HEADERFUNCTION, self.lines.append)
        self.on_written, self.pending = on_written, 0
        if on_written is not None:
            curl.setopt(pycurl.VERBOSE, 1)  # DEBUGFUNCTION is only called in verbose mode
            curl.setopt(pycurl.DEBUGFUNCTION, self._debug)

    def _debug(self, kind: int, data: bytes) -> None:
        # libcurl passes DATA_OUT after the body bytes were sent (headers: HEADER_OUT)
        if kind == self.pycurl.INFOTYPE_DATA_OUT and self.pending > 0:
            self.pending -= len(data)
            if self.pending <= 0 and self.on_written is not None:
                self.on_written()

    def __call__(self, i: int) -> Any:
        body, headers = self.build(i)
        self.chunks.clear()
        self.lines.clear()
        self.pending = len(body)
        self.curl.setopt(self.pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()])
        self.curl.setopt(self.pycurl.POSTFIELDS, body)
        self.curl.perform()
        date = next((line[5:].strip().decode("latin-1") for line in self.lines
                     if line[:5].lower() == b"date:"), None)
        return check(self.curl.getinfo(self.pycurl.RESPONSE_CODE), b"".join(self.chunks), date)


def pycurl_hook_client(url: str) -> Call:
    written = [0]

    def count() -> None:
        written[0] += 1

    return Curl(url, on_written=count)


MAKERS: dict[str, Callable[[str], Call]] = {
    "sdk": sdk_client, "exporter": exporter_client, "urllib3": urllib3_client,
    "urllib3-pool": urllib3_pool_client, "pycurl": Curl, "pycurl-hook": pycurl_hook_client,
    "httpx": httpx_client, "http.client": http_client_client,
}


def available(names: tuple[str, ...]) -> list[str]:
    """The clients whose optional library is installed; says which are skipped."""
    kept = []
    for name in names:
        module = OPTIONAL.get(name)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                log(f"{name}: {module} not installed, skipped (pip install {module})")
                continue
        kept.append(name)
    return kept


# -- paced, each client in its own process -------------------------------------------------------
def child(name: str, url: str, seconds: float) -> None:
    """In its own process: ``name``'s call paced at PACE req/s; prints its CPU per request."""
    print(json.dumps(paced_cpu(MAKERS[name](url), seconds)))


def paced_run(names: list[str], rounds: int, seconds: float) -> dict[str, list[float]]:
    """CPU ms per paced request of each client, one value per round (rounds interleaved)."""
    sim = Simulator(Workdir("clients").path,
                    scenario(TARGETS, rate_limit=10**9, faults=[latency_fault(0.02)]))
    per: dict[str, list[float]] = {name: [] for name in names}
    try:
        for r in range(rounds):
            for name in names:
                out = subprocess.run([sys.executable, __file__, "--child", name, sim.url,
                                      str(seconds)], check=True, capture_output=True, text=True,
                                     timeout=seconds + 60)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                per[name].append(result["cpu_ms_per_request"])
                log(f"  round {r + 1} {name}: {result['cpu_ms_per_request']:.3f} ms "
                    f"({result['rate']:.1f} req/s)")
            # cpu.py's exporter run: 150 targets, full budget, own simulator
            whole = side_by_side(seconds, with_sdk=False)["exporter"]
            per.setdefault(PROCESS, []).append(whole["cpu_ms_per_request"])
            log(f"  round {r + 1} {PROCESS}: {whole['cpu_ms_per_request']:.3f} ms "
                f"({whole['rate']:.1f} req/s)")
    finally:
        sim.stop()
    return per


def warm_run(names: list[str], count: int) -> dict[str, float]:
    sim = Simulator(Workdir("clients-warm").path, scenario(TARGETS, rate_limit=10**9))
    try:
        return back_to_back({name: MAKERS[name](sim.url) for name in names}, count)
    finally:
        sim.stop()


# -- does pycurl's hook report the write before the answer? -------------------------------------
class _Slow(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # the answer's head and body leave at once
    arrivals: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.arrivals.append(time.monotonic())
        time.sleep(HOOK_DELAY)
        body = b'{"Response": {"RequestId": "hook-check", "Status": "InProgress"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def hook_check(requests: int = 5) -> list[dict[str, float]]:
    """Per request on one kept-alive handle: ms from the start to the server having read it,
    to the hook, and to ``perform`` returning; the hook's count (must be 1)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    marks: list[float] = []
    curl = Curl(f"http://127.0.0.1:{server.server_address[1]}",
                on_written=lambda: marks.append(time.monotonic()))
    rows = []
    try:
        for i in range(requests):
            marks.clear()
            started = time.monotonic()
            curl(i)
            done = time.monotonic()
            rows.append({"server_read_ms": (_Slow.arrivals[-1] - started) * 1000,
                         "hook_ms": (marks[0] - started) * 1000 if marks else float("nan"),
                         "answer_ms": (done - started) * 1000, "hook_calls": len(marks)})
    finally:
        server.shutdown()
        server.server_close()
    return rows


# -- the table ----------------------------------------------------------------------------------
def summary_rows(paced: dict[str, list[float]], warm: dict[str, float]) -> list[tuple[str, ...]]:
    """One row per client; the estimate keeps the exporter process's cost above its client
    (poller, threads, limiter's sleep: ``process - exporter``) and swaps the client for ``x``."""
    med = {name: statistics.median(v) for name, v in paced.items()}
    sdk, ours, whole = med["sdk"], med["exporter"], med[PROCESS]
    rows = [("client", "paced ms/request (rounds)", "x SDK", "x exporter client", "warm ms",
             "warm x exporter client", "est. exporter process with it (process - exporter + x)")]
    for name, ms in med.items():
        estimate = (f"{whole - ours + ms:.2f} ms = {(whole - ours + ms) / sdk:.2f}x SDK"
                    if name not in ("sdk", "exporter", PROCESS) else "")
        rows.append((name, f"{ms:.3f} ({', '.join(f'{v:.2f}' for v in paced[name])})",
                     f"{ms / sdk:.2f}x", f"{ms / ours:.2f}x",
                     f"{warm[name]:.3f}" if name in warm else "-",
                     f"{warm[name] / warm['exporter']:.2f}x" if name in warm else "-", estimate))
    return rows


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one round of 6 s per client")
    parser.add_argument("--rounds", type=int, default=None, help="paced rounds (default 2)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measured seconds per client per round (default 10)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 2)
    seconds = args.seconds or (6.0 if args.quick else 10.0)
    names = available(CLIENTS)
    log(f"HTTP clients: {rounds} round(s) of {seconds:g} s per client at {PACE} req/s, "
        f"one thread, 20 ms answers; then warm back to back")
    paced = paced_run(names, rounds, seconds)
    warm = warm_run(names, 300 if args.quick else 1000)
    hook = hook_check() if "pycurl-hook" in names else []
    save_json(args.out, "http_clients", {"name": "http_clients", "paced": paced, "warm": warm,
                                         "hook": hook, "rounds": rounds, "seconds": seconds})
    for row in summary_rows(paced, warm):
        print(" | ".join(row))
    for i, h in enumerate(hook):
        print(f"pycurl hook, request {i + 1} (server answers {HOOK_DELAY * 1000:.0f} ms after "
              f"reading it): server read at {h['server_read_ms']:.1f} ms, hook at "
              f"{h['hook_ms']:.1f} ms, answer at {h['answer_ms']:.1f} ms, "
              f"hook calls {h['hook_calls']:.0f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        main()
