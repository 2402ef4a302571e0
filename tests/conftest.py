"""Shared fixtures: an Exporter wired like the CLI does, with a fake clock and a faked API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock
from trtc_exporter.config import parse_config
from trtc_exporter.credentials import Credentials, StaticProvider
from trtc_exporter.secret import Secret

ENDPOINT = "http://trtc.test"
SECRET_ID = "AKIDfixture0000000000000000000000001"
SECRET_KEY = "fixtureSECRETkey000000000000000001"


def answer(status: str, task_id: str = "t", start: object = "2026-11-24 18:00:00",
           **extra: object) -> dict[str, object]:
    return {"Response": {"Status": status, "StartTime": start, "TaskId": task_id,
                         "RequestId": f"req-{task_id}", **extra}}


def api_error(code: str) -> dict[str, object]:
    return {"Response": {"Error": {"Code": code, "Message": "m"}, "RequestId": "req-err"}}


@pytest.fixture
def mocked_api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def build_exporter(raw: dict[str, object], clock: FakeClock | None = None) -> Exporter:
    raw = {"api": {"endpoint": ENDPOINT, "max_retries": 0}, **raw}
    creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
    return Exporter(parse_config(raw), creds, clock=clock or FakeClock(auto_advance=True))


def poll_all(exporter: Exporter) -> None:
    """Poll every target once, synchronously, in a stable order."""
    for target in sorted(exporter.poller.targets(), key=lambda t: t.key):
        exporter.poller.poll_one(target.key)
