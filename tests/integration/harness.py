"""Start the installed console script (exporter and simulator) as real processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

EXE = "trtc-transcription-exporter"
SECRET_ID = "AKIDintegration00000000000000000001"
SECRET_KEY = "integrationSECRETkey0000000000000001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             error: type[Exception] = AssertionError) -> None:
    """Poll check() every 0.1 s (connection errors count as not yet); raise error on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise error(f"timed out after {timeout}s waiting for {what}")


class Process:
    """A child process whose output goes to a file (read back on failure)."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.log = log
        self._out = log.open("wb")
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen([EXE, *args], stdout=self._out, stderr=subprocess.STDOUT,
                                     env=full_env)

    def output(self) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


class Simulator(Process):
    def __init__(self, tmp: Path, scenario: dict[str, Any]) -> None:
        scenario = {"credentials": [{"secret_id": SECRET_ID, "secret_key": SECRET_KEY}],
                    **scenario}
        path = tmp / "scenario.yml"
        path.write_text(yaml.safe_dump(scenario))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(["simulate", "--listen", f"127.0.0.1:{self.port}", "--scenario",
                          str(path), "--seed", "42"], tmp / "simulator.log")
        wait_for(lambda: requests.get(self.url + "/_sim/stats", timeout=1).ok, 15,
                 "simulator to listen")

    def control(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        resp = requests.request(method, f"{self.url}/_sim/{path}", json=body, timeout=5)
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    def truth(self) -> dict[str, str]:
        return {t["task_id"]: t["status"] for t in self.control("GET", "tasks")["tasks"]}


class Exporter(Process):
    def __init__(self, tmp: Path, config: dict[str, Any], extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, wait_ready: bool = True) -> None:
        self.config_path = tmp / "exporter.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        creds = {"TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY}
        super().__init__(["--config.file", str(self.config_path), "--web.listen-address",
                          f"127.0.0.1:{self.port}", *(extra_args or [])],
                         tmp / "exporter.log", {**creds, **(env or {})})
        if wait_ready:
            wait_for(lambda: requests.get(self.url + "/-/ready", timeout=1).ok, 30,
                     "exporter to be ready")

    def samples(self) -> list[tuple[str, dict[str, str], float]]:
        text = requests.get(self.url + "/metrics", timeout=5).text
        return [(s.name, s.labels, s.value) for fam in text_string_to_metric_families(text)
                for s in fam.samples]

    def value(self, name: str, **labels: str) -> float | None:
        for sample, have, val in self.samples():
            if sample == name and all(have.get(k) == v for k, v in labels.items()):
                return val
        return None

    def statuses(self) -> dict[str, str]:
        """task_id (or session_id) → the status whose StateSet series is 1."""
        return {(lab["task_id"] or lab["session_id"]): lab["status"]
                for name, lab, val in self.samples()
                if name == "trtc_ai_transcription_status" and val == 1}


def dump(*processes: Process) -> str:
    return "\n".join(f"--- {p.log.name}\n{p.output()[-4000:]}" for p in processes)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})}, check=False)


json_dumps = json.dumps
python = sys.executable
