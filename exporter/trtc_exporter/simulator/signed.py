"""Build the headers of a signed API 3.0 request the way the official SDK does.

Shipped with the simulator (testability as API): tests, benchmarks and the demo can talk to the
simulator without the exporter's client, and a mismatch between the two shows up as a test failure
instead of a shared bug.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import requests

from trtc_exporter.api import signing
from trtc_exporter.simulator.auth import Credential

VERSION = "2019-07-22"


def signed_headers(
    *,
    secret_id: str,
    secret_key: str,
    host: str,
    action: str,
    body: bytes,
    timestamp: int,
    region: str | None = "ap-guangzhou",
    token: str | None = None,
    language: str | None = None,
) -> dict[str, str]:
    """Every header the SDK sends for ``POST /`` (``X-TC-Token`` only with a token)."""
    parts = signing.sign(
        secret_id=secret_id, secret_key=secret_key, host=host, payload=body, timestamp=timestamp
    )
    headers = {
        "Content-Type": signing.CONTENT_TYPE,
        "Host": host,
        "X-TC-Action": action,
        "X-TC-Timestamp": str(timestamp),
        "X-TC-Version": VERSION,
        "Authorization": parts.authorization,
    }
    if region:
        headers["X-TC-Region"] = region
    if token:
        headers["X-TC-Token"] = token
    if language:
        headers["X-TC-Language"] = language
    return headers


def post(
    session: requests.Session,
    url: str,
    credential: Credential,
    action: str,
    params: object,
    *,
    region: str | None = "ap-guangzhou",
    timestamp: int | None = None,
    timeout: float | tuple[float, float] = 5.0,
    language: str | None = None,
) -> requests.Response:
    """Send one signed API call to ``url`` (the simulator's base URL) and return the response.

    The body is serialised like the SDK does (``json.dumps`` defaults). ``timestamp`` defaults to
    the real time; pass the simulator's clock time when it runs on a ``FakeClock``.
    """
    body = json.dumps(params).encode("utf-8")
    host = urlsplit(url).netloc
    headers = signed_headers(
        secret_id=credential.secret_id,
        secret_key=credential.secret_key.reveal(),
        host=host,
        action=action,
        body=body,
        timestamp=int(time.time()) if timestamp is None else timestamp,
        region=region,
        token=credential.token.reveal() if credential.token is not None else None,
        language=language,
    )
    return session.post(url.rstrip("/") + "/", data=body, headers=headers, timeout=timeout)
