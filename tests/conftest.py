"""Shared fixtures: an Exporter wired like the CLI does, with a fake clock and a faked API."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.apimock import SERVER, ApiMock
from tests.coordination.conftest import REDIS_SERVER, RedisProcess
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import parse_config
from trtc_exporter.secret import Secret
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer
from trtc_exporter.webhook.keys import KeyRing

ENDPOINT = SERVER.endpoint  # the local API stand-in (tests/apimock.py)
SECRET_ID = "AKIDfixture0000000000000000000000001"
SECRET_KEY = "fixtureSECRETkey000000000000000001"


def answer(status: str, task_id: str = "t", start: object = "2026-11-24 18:00:00",
           **extra: object) -> dict[str, object]:
    return {"Response": {"Status": status, "StartTime": start, "TaskId": task_id,
                         "RequestId": f"req-{task_id}", **extra}}


def api_error(code: str) -> dict[str, object]:
    return {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "req-err"}}


@pytest.fixture
def mocked_api() -> Iterator[ApiMock]:
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def build_exporter(raw: dict[str, object], clock: FakeClock | None = None,
                   keyring: KeyRing | None = None) -> Exporter:
    """An Exporter on the fake API; ``keyring`` switches the callback receiver on."""
    raw = {"api": {"endpoint": ENDPOINT, "max_retries": 0}, **raw}
    creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
    return Exporter(parse_config(raw), creds, clock=clock or FakeClock(auto_advance=True),
                    keyring=keyring)


def poll_all(exporter: Exporter) -> None:
    """Poll every target once, synchronously, in a stable order."""
    for target in sorted(exporter.poller.targets(), key=lambda t: t.key):
        exporter.poller.poll_one(target.key)


@contextlib.contextmanager
def serving(exporter: Exporter, telemetry_path: str = "/metrics") -> Iterator[str]:
    """Serve the exporter's endpoints on a free loopback port; yields the base URL."""
    server = ExporterHTTPServer(("127.0.0.1", 0),
                                handler_class(Routes(exporter, telemetry_path, lifecycle=True)),
                                None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def with_secret_files(text: str, tmp: Path) -> tuple[str, dict[str, str]]:
    """A config's text with its secret file paths moved into ``tmp`` (files created there),
    plus an environment holding fake keys: ``--config.check`` reads credentials as start does,
    and the deployment's /run/secrets paths do not exist on a test machine."""
    raw = yaml.safe_load(text)
    creds = raw.get("api", {}).get("credentials", {}) or {}
    registration = raw.get("registration", {}) or {}
    coordination = raw.get("coordination", {}) or {}
    sections = [creds, *((a.get("credentials") or {}) for a in raw.get("accounts") or [])]
    for n, (section, key) in enumerate(
            [(c, k) for c in sections for k in ("secret_id_file", "secret_key_file", "token_file")]
            + [(registration, "bearer_token_file")]
            + [(coordination, k) for k in ("password_file", "ca_file", "cert_file", "key_file")]):
        if section.get(key):
            fake = tmp / f"{n}-{key}"
            fake.write_text(f"fake-{key}-0000000000000000\n", encoding="utf-8")
            section[key] = str(fake)
    keys = [(raw.get("webhook") or {}, "key_file")] + [
        (app, "callback_key_file") for app in (raw.get("apps") or {}).values()]
    for index, (section, key) in enumerate(keys):
        if section.get(key):  # callback keys are 1-32 letters and digits (TRTC console rule)
            fake = tmp / f"callback-key-{index}"
            fake.write_text(f"FakeCallbackKey{index:04d}\n", encoding="utf-8")
            section[key] = str(fake)
    env = {**os.environ, "TENCENTCLOUD_SECRET_ID": SECRET_ID, "TENCENTCLOUD_SECRET_KEY": SECRET_KEY,
           "HOME": str(tmp)}
    return yaml.safe_dump(raw, sort_keys=False), env


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone, for tests that stop it, restart it or give it a
    password (tests/coordination and the check command's tests)."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisProcess(tmp_path)
    server.start()
    yield server
    server.stop()
