"""``POST /api/v1/targets`` and ``DELETE /api/v1/targets/{id}``: the registration API.

Validation is the config file's own (:func:`parse_targets`), so a JSON error names the field the
same way a config error does. Writes need the registration to be enabled and authenticated: the
web config's basic auth (checked for every request before we get here) or a bearer token.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from email.message import Message
from http import HTTPStatus
from socketserver import BaseServer
from typing import Any, Protocol

from trtc_exporter.config.model import ApiConfig, account_problem, parse_targets
from trtc_exporter.errors import Errors
from trtc_exporter.jsonload import JsonError, load_json
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import RegistrationStoreError
from trtc_exporter.targets.targetset import TargetConflictError, TargetLimitError
from trtc_exporter.web.protocol import ExporterProtocol
from trtc_exporter.web.toolkit.server import ExporterHTTPServer

MAX_BODY = 10 << 20
_SOURCE_NAMES = {"config": "config file", "file": "target files (target_files)",
                 "webhook": "webhook events"}


class RequestHandler(Protocol):
    """What these endpoints use of the request handler (routes.ExporterHandler provides it)."""

    headers: Message
    close_connection: bool
    server: BaseServer

    @property
    def exporter(self) -> ExporterProtocol:
        """The exporter as the web layer sees it."""

    def send_json(self, status: int, document: Any) -> None:
        """Send ``document`` as a JSON response with ``status``."""

    def send_error_json(self, status: int, *errors: str,
                        headers: Mapping[str, str] | None = None) -> None:
        """An error answer in the one JSON shape (``web/toolkit/answers``), with ``headers``
        added."""

    def read_body(self, max_bytes: int) -> bytes:
        """The request body (b"" when there is none); FramingError 413 past ``max_bytes`` or 400
        for a bad chunked body; IncompleteRequest when the client stops sending."""
log = logging.getLogger("trtc_exporter.web_targets")  # caller= stays as before


def _error(handler: RequestHandler, status: int, *errors: str) -> None:
    handler.send_error_json(status, *errors)


def _bearer(header: str) -> bytes:
    """The token of a ``Bearer`` Authorization value (scheme case-insensitive, RFC 9110
    §11.1; b"" for any other scheme)."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip().encode() if scheme.lower() == "bearer" else b""


def _basic_auth_on(handler: RequestHandler) -> bool:
    """True when the web config in force has basic-auth users (so this request passed them)."""
    server = handler.server
    config = server.web_config() if isinstance(server, ExporterHTTPServer) else None
    return config is not None and bool(config.users)


def _allowed(handler: RequestHandler) -> bool:
    """Registration enabled and authenticated: bearer token when configured, else basic auth.

    Fails closed: registration enabled by a reload, or basic-auth users removed from a rotated
    web config, without a bearer token leaves the API refusing writes instead of open.
    A refused request's body is never read, so its connection is closed after the answer.
    """
    registration = handler.exporter.config.registration
    if not registration.enabled:
        handler.close_connection = True
        _error(handler, HTTPStatus.FORBIDDEN, "registration is disabled (registration.enabled)")
        return False
    token = handler.exporter.bearer_token()
    if token is None:
        if _basic_auth_on(handler):
            return True  # basic auth of the web config protected this request
        handler.close_connection = True
        _error(handler, HTTPStatus.FORBIDDEN, "registration needs authentication: set "
               "registration.bearer_token_file or basic_auth_users in --web.config.file")
        return False
    given = _bearer(handler.headers.get("Authorization", ""))
    if not hmac.compare_digest(given, token.reveal().encode()):
        handler.close_connection = True
        handler.send_error_json(HTTPStatus.UNAUTHORIZED, "a valid bearer token is needed",
                                headers={"WWW-Authenticate": 'Bearer realm="trtc-exporter"'})
        return False
    return True


def _read_json(handler: RequestHandler) -> Any:
    """The JSON body (ValueError when empty or not JSON; FramingError 413 when too large)."""
    body = handler.read_body(MAX_BODY)
    if not body:
        raise ValueError(f"body: need a JSON body of at most {MAX_BODY} bytes")
    try:
        return load_json(body)
    except JsonError as exc:
        raise ValueError(f"body: not valid JSON: {exc}") from None
    except (ValueError, RecursionError):
        raise ValueError("body: not valid JSON") from None


def _split(document: Any, errors: Errors) -> tuple[Any, float | None]:
    """Accept one target, a list, or {"targets": [...], "ttl": "1h"} (ttl as in the config)."""
    if isinstance(document, dict) and "targets" in document:
        errors.mapping(document, "", frozenset({"targets", "ttl"}))
        ttl = errors.duration(document, "ttl", "", 0.0) or None
        return document["targets"], ttl
    if isinstance(document, dict):
        return [document], None
    return document, None


def post_targets(handler: RequestHandler) -> None:
    """``POST /api/v1/targets``: register one target, a list, or {"targets": [...], "ttl": "1h"}."""
    if not _allowed(handler):
        return
    try:
        document = _read_json(handler)
    except ValueError as exc:
        _error(handler, HTTPStatus.BAD_REQUEST, str(exc))
        return
    exporter = handler.exporter
    errors = Errors()
    raw, ttl = _split(document, errors)
    api = exporter.config.api
    targets = parse_targets(raw, "targets", errors, api.region, source="api",
                            extra_regions=api.extra_regions)
    for index, target in enumerate(targets):
        problem = account_problem(target.account, exporter.config.accounts)
        if problem:
            errors.add(f"targets[{index}].account", problem)
    if errors.lines:
        _error(handler, HTTPStatus.BAD_REQUEST, *errors.report())
        return
    try:
        new = exporter.register(list(targets), ttl)
    except TargetLimitError as exc:
        _error(handler, HTTPStatus.TOO_MANY_REQUESTS, str(exc))
        return
    except TargetConflictError as exc:
        _error(handler, HTTPStatus.CONFLICT, str(exc))
        return
    except RegistrationStoreError as exc:
        _error(handler, HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        return
    handler.send_json(HTTPStatus.OK, {"status": "success", "data": {
        "registered": len(targets), "new": len(new), "ids": [t.id for t in targets]}})


def delete_target(handler: RequestHandler, target_id: str) -> None:
    """``DELETE /api/v1/targets/{id}``: remove a registration."""
    if not _allowed(handler):
        return
    try:
        removed = handler.exporter.unregister(target_id)
    except RegistrationStoreError as exc:
        _error(handler, HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        return
    if not removed:
        source = next((s.target.source for s in handler.exporter.states()
                       if s.target.id == target_id), None)
        if source is not None:
            _error(handler, HTTPStatus.CONFLICT, f"target {target_id} comes from the "
                   f"{_SOURCE_NAMES.get(source, source)}; remove it there")
        else:
            _error(handler, HTTPStatus.NOT_FOUND, f"no registered target with id {target_id}")
        return
    handler.send_json(HTTPStatus.OK, {"status": "success", "data": {"deleted": target_id}})


def _fresh(expires_at: float | None, now: float, ttl: float) -> bool:
    """A registration that needs no refresh: permanent, or with at least half its TTL left."""
    return expires_at is None or expires_at - now >= ttl / 2


def _probe_target(params: dict[str, str], api: ApiConfig) -> Target | None:
    """The target a probe's query names, validated like a config entry (None if invalid)."""
    raw: dict[str, Any] = {k: v for k, v in params.items()
                           if k in ("task_id", "session_id", "api", "region")}
    if "sdk_app_id" in params:
        app = params["sdk_app_id"]
        digits = app.isascii() and app.isdigit() and len(app) <= 20  # int() refuses 4 300+
        raw["sdk_app_id"] = int(app) if digits else app
    errors = Errors()
    targets = parse_targets([raw], "probe", errors, api.region, source="api",
                            extra_regions=api.extra_regions)
    return targets[0] if targets and not errors.lines else None


def register_probed(handler: RequestHandler, params: dict[str, str],
                    found: list[TargetState]) -> None:
    """blackbox-style discovery: an unknown probed target is registered (when allowed) and
    answered from its first poll on; the probe itself never calls the API. Probing a registered
    target again extends its TTL (written when less than half of it is left); a target that is
    registered but polled by another shard is not written again on every probe."""
    exporter = handler.exporter
    registration = exporter.config.registration
    if not registration.allow_probe_registration:
        return
    now, ttl = exporter.now(), registration.probe_ttl
    if found and all(_fresh(exporter.registration_expiry(s.target.key), now, ttl)
                     for s in found):
        return
    target = _probe_target(params, exporter.config.api)
    if target is None:
        return
    known = None if found else exporter.registered(target.key)
    if known is not None and _fresh(known.expires_at, now, ttl):
        return
    try:
        exporter.register([target], ttl)
    except (TargetLimitError, TargetConflictError, RegistrationStoreError) as exc:
        log.warning("probe registration refused: %s", exc)
