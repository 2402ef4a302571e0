"""The webhook config block and apps.<id>.callback_key_file: defaults and exact messages."""

from __future__ import annotations

from typing import Any

import pytest

from trtc_exporter.config.webhook import (
    ForwardConfig,
    WebhookConfig,
    parse_app_callback_key,
    parse_webhook,
)
from trtc_exporter.errors import Errors


def _parse(raw: object) -> tuple[WebhookConfig, list[str]]:
    errors = Errors()
    config = parse_webhook(raw, errors)
    return config, errors.lines


def test_absent_block_gives_defaults() -> None:
    """No webhook block: no key, signed only, 10m max age, 5m silence, no forwarding."""
    assert _parse(None) == (WebhookConfig(None, False, 600.0, 300.0, None), [])


def test_a_full_block_is_read() -> None:
    """Every field is read, with durations in seconds."""
    config, lines = _parse({
        "key_file": "/run/k", "allow_unsigned": True, "max_age": "2m", "silence_after": "90s",
        "forward_to": "https://backend.example/cb", "forward_db_path": "/var/q.db",
        "forward_max_queued": 50, "forward_retry_for": "2h", "forward_timeout": "3s",
        "forward_backoff_max": "10s"})
    assert lines == []
    assert config == WebhookConfig("/run/k", True, 120.0, 90.0, ForwardConfig(
        "https://backend.example/cb", "/var/q.db", 50, 7200.0, 3.0, 10.0))


@pytest.mark.parametrize(("raw", "line"), [
    ({"keyfile": "x"}, "webhook.keyfile: unknown field"),
    ({"key_file": ""}, "webhook.key_file: must not be empty"),
    ({"key_file": 3}, "webhook.key_file: must be a string, got integer"),
    ({"allow_unsigned": "yes"}, "webhook.allow_unsigned: must be true or false, got string"),
    ({"max_age": 600}, 'webhook.max_age: must be a duration string like "15s", got integer'),
    ({"silence_after": "0s"}, 'webhook.silence_after: must be > 0, got "0s"'),
    ({"forward_to": "ftp://x"}, "webhook.forward_to: must be an http:// or https:// URL, "
                                "got 'ftp://x'"),
    ({"forward_timeout": "3s"}, "webhook.forward_timeout: needs webhook.forward_to"),
    ({"forward_to": "http://b", "forward_retry_for": "30s"},
     "webhook.forward_retry_for: must be >= 1m (TRTC itself retries for one minute), "
     "got '30s'"),
    ({"forward_backoff_max": "5s"}, "webhook.forward_backoff_max: needs webhook.forward_to"),
    ({"forward_to": "http://b", "forward_backoff_max": "500ms"},
     "webhook.forward_backoff_max: must be >= 1s, got '500ms'"),
    ({"forward_to": "http://b", "forward_max_queued": 0},
     "webhook.forward_max_queued: must be >= 1, got 0"),
    ([], "webhook: must be a mapping, got list"),
])
def test_mistakes_are_named_by_path(raw: Any, line: str) -> None:
    """Each mistake gives exactly one `webhook.field: problem` line."""
    assert _parse(raw)[1] == [line]


def test_the_queue_file_defaults_beside_the_registrations() -> None:
    """Without forward_db_path the queue lives next to registration.db_path."""
    forward = ForwardConfig("http://b")
    assert forward.resolved_db_path("data/registered-targets.db") == "data/webhook-forward.db"
    assert ForwardConfig("http://b", db_path="/q.db").resolved_db_path("x/y.db") == "/q.db"


def test_app_callback_key_file_is_read_with_its_path() -> None:
    """apps.<id>.callback_key_file is a path; a bad one is named with the app's prefix."""
    errors = Errors()
    assert parse_app_callback_key({"callback_key_file": "/k"}, "apps.1400.", errors) == "/k"
    assert parse_app_callback_key({"callback_key_file": "a\x00"}, "apps.1400.", errors) is None
    assert errors.lines == ["apps.1400.callback_key_file: must be a file path"]
