"""The e2e stack: exporter (--demo), Prometheus, Alertmanager and a webhook receiver on loopback.

Prometheus and Alertmanager run with deploy/prometheus.yml and deploy/alertmanager.yml, templated
only for addresses, rule file paths and the intervals a test run can afford.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ALERTS = ROOT / "alerts"
EXPORTER = "trtc-transcription-exporter"
PROMETHEUS = "prometheus"
PROMTOOL = "promtool"
ALERTMANAGER = "prometheus-alertmanager"
AMTOOL = "amtool"
# Placeholders of the deploy/ examples that the tests replace with loopback addresses.
EXPORTER_PLACEHOLDER = "trtc-exporter:9877"
ALERTMANAGER_PLACEHOLDER = "alertmanager:9093"
WEBHOOK_PLACEHOLDER = "http://alert-receiver.example:8080/trtc-alerts"
INTERVAL = "1s"  # scrape and evaluation interval of the test Prometheus
# The label matchers the bundled rules select the exporter by (alerts/config.yml).
SELECTOR: str = yaml.safe_load((ALERTS / "config.yml").read_text("utf-8"))["trtcExporterSelector"]
EXPORTERS = 2  # exporter instances scraped by the one job: every query must work with N
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_GROUPING = {"group_wait": "30s", "group_interval": "5m"}  # Alertmanager's defaults
_SIMULATOR_URL = re.compile(r"embedded TRTC simulator at (http://127\.0\.0\.1:\d+)")
T = TypeVar("T")


def require(*binaries: str) -> None:
    """Fail (never skip) when a binary is missing: CI installs them, so absence is a bug."""
    missing = [name for name in binaries if shutil.which(name) is None]
    if missing:
        pytest.fail(f"e2e tests need {', '.join(missing)} on PATH: run scripts/test, which "
                    "installs the Debian packages prometheus and prometheus-alertmanager and the "
                    "exporter (pip install -e .)", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], T], deadline: float, what: str,
               describe: Callable[[], str] = lambda: "") -> T:
    """Poll ``check`` every 0.5 s until it returns something truthy or time.monotonic() passes
    ``deadline``; connection errors count as "not yet"."""
    while True:
        try:
            result = check()
            if result:
                return result
        except (requests.RequestException, ValueError):
            pass
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out waiting for {what}. {describe()}".rstrip())
        time.sleep(0.5)


def _replace_targets(configs: list[dict[str, Any]], placeholder: str, *addresses: str) -> int:
    count = 0
    for config in configs:
        for static in config.get("static_configs", []):
            targets = static["targets"]
            count += targets.count(placeholder)
            static["targets"] = [new for t in targets
                                 for new in (addresses if t == placeholder else (t,))]
    return count


def template_prometheus(source: Path, exporter: str | list[str],
                        alertmanager: str) -> dict[str, Any]:
    """deploy/prometheus.yml with loopback addresses (one or several exporters in place of its
    one), absolute rule paths and 1 s intervals."""
    doc: dict[str, Any] = yaml.safe_load(source.read_text("utf-8"))
    exporters = [exporter] if isinstance(exporter, str) else exporter
    found = _replace_targets(doc["scrape_configs"], EXPORTER_PLACEHOLDER, *exporters)
    assert found == 1, f"{source}: expected one target {EXPORTER_PLACEHOLDER!r}, found {found}"
    managers = doc["alerting"]["alertmanagers"]
    found = _replace_targets(managers, ALERTMANAGER_PLACEHOLDER, alertmanager)
    assert found == 1, f"{source}: expected one target {ALERTMANAGER_PLACEHOLDER!r}, found {found}"
    # Prometheus resolves relative rule paths against the config's directory; the copy lives in
    # tmp, so make them absolute (same files).
    doc["rule_files"] = [str((source.parent / path).resolve()) for path in doc["rule_files"]]
    doc["global"]["scrape_interval"] = doc["global"]["evaluation_interval"] = INTERVAL
    for job in doc["scrape_configs"]:
        if "scrape_interval" in job:
            job["scrape_interval"] = INTERVAL
    return doc


def seconds(duration: str) -> float:
    """A Prometheus duration such as ``1m30s`` in seconds."""
    return sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+)(ms|[smhdwy])", duration))


def _shorten_grouping(route: dict[str, Any], root: bool = False) -> None:
    # The example's notification delays (group_wait 30s/10s, group_interval 5m) would outlast the
    # test: where a route waits longer than 1s (its own value, or Alertmanager's default on the
    # root route; child routes inherit), the copy waits 1s. That changes when Alertmanager
    # notifies, not what it routes or sends.
    for key, default in _GROUPING.items():
        value = route.get(key, default if root else None)
        if value is not None and seconds(value) > seconds(INTERVAL):
            route[key] = INTERVAL
    for child in route.get("routes", []):
        _shorten_grouping(child)


def template_alertmanager(source: Path, webhook_url: str) -> dict[str, Any]:
    """deploy/alertmanager.yml with the webhook URL of the test receiver and 1 s grouping."""
    doc: dict[str, Any] = yaml.safe_load(source.read_text("utf-8"))
    found = 0
    for receiver in doc["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"] == WEBHOOK_PLACEHOLDER:
                hook["url"] = webhook_url
                found += 1
    assert found >= 1, f"{source}: no webhook_configs url {WEBHOOK_PLACEHOLDER!r} to replace"
    _shorten_grouping(doc["route"], root=True)
    return doc


class Process:
    """A child process whose output goes to a log file, read back when a test fails."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT)

    def output(self, limit: int = 3000) -> str:
        if not self._out.closed:
            self._out.flush()
        return self.log.read_text(errors="replace")[-limit:]

    def check_running(self) -> None:
        code = self.proc.poll()
        assert code is None, f"{self.name} exited with {code}:\n{self.output()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


class WebhookReceiver:
    """An Alertmanager webhook endpoint on 127.0.0.1 that records every notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/trtc-alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def alerts(self) -> list[dict[str, Any]]:
        """Every alert of every notification received so far."""
        with self._lock:
            return [alert for note in self.notifications for alert in note["alerts"]]

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Stack:
    """The running processes and their URLs; ``started`` is a time.monotonic() value."""

    def __init__(self, tmp: Path, resources: ExitStack) -> None:
        self.started = time.monotonic()
        self.tmp = tmp
        self.webhook = WebhookReceiver()
        resources.callback(self.webhook.stop)
        # Two demo exporters with the same seed: the same apps and tasks reported twice, as by
        # replicas of one shard (each with its own embedded simulator).
        self.exporter_addresses = [f"127.0.0.1:{free_port()}" for _ in range(EXPORTERS)]
        self.exporter_address = self.exporter_addresses[0]
        self.exporter_url = f"http://{self.exporter_address}"
        self.exporters = [
            self._start(resources, f"exporter-{index}", [
                EXPORTER, "--demo", "--web.listen-address", address])
            for index, address in enumerate(self.exporter_addresses)]
        self.exporter = self.exporters[0]
        am_address = f"127.0.0.1:{free_port()}"
        self.alertmanager_url = f"http://{am_address}"
        self.alertmanager_config = tmp / "alertmanager.yml"
        self._write(self.alertmanager_config,
                    template_alertmanager(DEPLOY / "alertmanager.yml", self.webhook.url))
        self.alertmanager = self._start(resources, "alertmanager", [
            ALERTMANAGER, f"--config.file={self.alertmanager_config}",
            f"--storage.path={tmp / 'alertmanager-data'}", f"--web.listen-address={am_address}",
            "--cluster.listen-address="])
        prom_address = f"127.0.0.1:{free_port()}"
        self.prometheus_url = f"http://{prom_address}"
        self.prometheus_config = tmp / "prometheus.yml"
        self._write(self.prometheus_config, template_prometheus(
            DEPLOY / "prometheus.yml", self.exporter_addresses, am_address))
        self.prometheus = self._start(resources, "prometheus", [
            PROMETHEUS, f"--config.file={self.prometheus_config}",
            f"--storage.tsdb.path={tmp / 'prometheus-data'}",
            f"--web.listen-address={prom_address}"])
        urls = [(f"exporter {a}", f"http://{a}") for a in self.exporter_addresses]
        for name, url in (*urls, ("alertmanager", self.alertmanager_url),
                          ("prometheus", self.prometheus_url)):
            wait_until(lambda url=url: requests.get(url + "/-/ready", timeout=1).ok,
                       time.monotonic() + 30, f"{name} to be ready", self.logs)

    def _start(self, resources: ExitStack, name: str, args: list[str]) -> Process:
        process = Process(name, args, self.tmp / f"{name}.log")
        resources.callback(process.stop)
        return process

    @staticmethod
    def _write(path: Path, doc: dict[str, Any]) -> None:
        path.write_text(yaml.safe_dump(doc, sort_keys=False), "utf-8")

    def deadline(self, seconds: float) -> float:
        """The monotonic time ``seconds`` after the stack was started."""
        return self.started + seconds

    def simulator_url(self) -> str:
        """The demo's embedded simulator, as the exporter logs it at start."""
        match = _SIMULATOR_URL.search(self.exporter.output(limit=100_000))
        assert match, f"no simulator URL in the exporter log:\n{self.exporter.output()}"
        return match.group(1)

    def create_task(self, task: dict[str, Any]) -> None:
        """Create a task in the demo's simulator through its control API (POST /_sim/tasks)."""
        resp = requests.post(self.simulator_url() + "/_sim/tasks", json=task, timeout=5)
        assert resp.ok, resp.text

    def logs(self) -> str:
        """The tail of every process log, for failure messages."""
        return "\n".join(f"--- {p.name}.log\n{p.output()}" for p in
                         (*self.exporters, self.prometheus, self.alertmanager))

    def api(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path and return its ``data`` (asserting success)."""
        resp = requests.get(self.prometheus_url + path, params=params, timeout=10)
        body = resp.json()
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query at now; the vector (or the scalar as a one-element list)."""
        data = self.api("/api/v1/query", query=expr)
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        result: list[dict[str, Any]] = data["result"]
        return result


def has_values(result: list[dict[str, Any]]) -> bool:
    """True when at least one sample is a number (NaN, e.g. a quantile of no data, is no data)."""
    return any(not math.isnan(float(item["value"][1])) for item in result)
