"""The ``webhook:`` config block and the ``apps.<id>.callback_key_file`` field.

Functions in the style of ``trtc_exporter.config``: raw YAML in, frozen dataclasses out, every
mistake added to a :class:`~trtc_exporter.errors.Errors` as ``field.path: problem``. Files are
only named here; :mod:`trtc_exporter.webhook.keys` reads the keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from trtc_exporter.config.fields import file_path, is_http_url
from trtc_exporter.errors import Errors, show

FIELDS = frozenset({"key_file", "allow_unsigned", "max_age", "silence_after", "forward_to",
                    "forward_db_path", "forward_max_queued", "forward_retry_for",
                    "forward_timeout", "forward_backoff_max"})
APP_FIELDS = frozenset({"callback_key_file"})
"""Fields this package adds to each ``apps.<id>`` entry (config.py's ``_APP`` must include them)."""

TRTC_RETRY_WINDOW = 60.0  # TRTC retries a failed delivery for one minute (doc 66149)
FORWARD_BACKOFF_MIN = 1.0  # the relay's first backoff; a smaller cap would only hammer the server
FORWARD_DB_NAME = "webhook-forward.db"


@dataclass(frozen=True, slots=True)
class ForwardConfig:
    """``webhook.forward_to`` and its queue: where verified callbacks are relayed, how hard."""

    url: str
    db_path: str | None = None  # None: beside registration.db_path (see forward_db_path)
    max_queued: int = 10_000
    retry_for: float = 3600.0  # seconds a callback is retried before it is given up
    timeout: float = 5.0  # seconds for connect and for read, per attempt
    backoff_max: float = 60.0  # seconds: the cap of the retry backoff (1 s doubling)

    def resolved_db_path(self, registration_db_path: str) -> str:
        """The queue's SQLite file: as configured, else ``webhook-forward.db`` beside the
        registrations database (``registration.db_path``)."""
        if self.db_path:
            return self.db_path
        return str(PurePath(registration_db_path).parent / FORWARD_DB_NAME)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """The ``webhook:`` block (the listener is switched on by ``--webhook.listen-address``)."""

    key_file: str | None = None
    allow_unsigned: bool = False
    max_age: float = 600.0  # seconds: an older CallbackTs is refused
    silence_after: float = 300.0  # seconds InProgress without a sentence before "silent"
    forward: ForwardConfig | None = None


def parse_webhook(raw: object, errors: Errors) -> WebhookConfig:
    """Validate the ``webhook:`` block (absent or null: all defaults)."""
    hook = errors.mapping(raw, "webhook", FIELDS)
    p = "webhook."
    return WebhookConfig(
        key_file=file_path(hook, "key_file", p, errors),
        allow_unsigned=errors.boolean(hook, "allow_unsigned", p, False),
        max_age=errors.duration(hook, "max_age", p, 600.0),
        silence_after=errors.duration(hook, "silence_after", p, 300.0),
        forward=_parse_forward(hook, errors),
    )


def parse_app_callback_key(app: Mapping[str, Any], prefix: str, errors: Errors) -> str | None:
    """``apps.<id>.callback_key_file`` of one app entry; ``prefix`` is ``"apps.<id>."``."""
    return file_path(app, "callback_key_file", prefix, errors)


def _parse_forward(hook: Mapping[str, Any], errors: Errors) -> ForwardConfig | None:
    p = "webhook."
    url = errors.string(hook, "forward_to", p, None)
    options = [k for k in ("forward_db_path", "forward_max_queued", "forward_retry_for",
                           "forward_timeout", "forward_backoff_max") if hook.get(k) is not None]
    if url is None:
        for key in options:
            errors.add(p + key, "needs webhook.forward_to")
        return None
    if not is_http_url(url):
        errors.add(p + "forward_to", f"must be an http:// or https:// URL, got {show(url)}")
        return None
    retry_for = errors.duration(hook, "forward_retry_for", p, 3600.0)
    if retry_for < TRTC_RETRY_WINDOW:
        errors.add(p + "forward_retry_for", f"must be >= 1m (TRTC itself retries for one "
                                            f"minute), got {show(hook.get('forward_retry_for'))}")
    return ForwardConfig(
        url=url,
        db_path=file_path(hook, "forward_db_path", p, errors),
        max_queued=errors.integer(hook, "forward_max_queued", p, 10_000, minimum=1,
                                  maximum=10_000_000) or 10_000,
        retry_for=max(retry_for, TRTC_RETRY_WINDOW),
        timeout=errors.duration(hook, "forward_timeout", p, 5.0),
        backoff_max=_backoff_max(hook, errors),
    )


def _backoff_max(hook: Mapping[str, Any], errors: Errors) -> float:
    """``webhook.forward_backoff_max``: at least the first backoff (1 s)."""
    cap = errors.duration(hook, "forward_backoff_max", "webhook.", 60.0)
    if cap < FORWARD_BACKOFF_MIN:
        errors.add("webhook.forward_backoff_max",
                   f"must be >= 1s, got {show(hook.get('forward_backoff_max'))}")
        return 60.0
    return cap
