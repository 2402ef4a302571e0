"""``POST /api/v1/targets`` and ``DELETE /api/v1/targets/{id}``: the registration API.

Validation is the config file's own (:func:`parse_targets`), so a JSON error names the field the
same way a config error does. Writes need the registration to be enabled and authenticated: the
web config's basic auth (checked for every request before we get here) or a bearer token.
"""

from __future__ import annotations

import hmac
import json
from http import HTTPStatus
import logging
from typing import TYPE_CHECKING, Any

from trtc_exporter.config import parse_targets
from trtc_exporter.durations import DurationError, parse_duration
from trtc_exporter.registry import RegistryError
from trtc_exporter.targetset import TargetLimitError
from trtc_exporter.validation import Errors

if TYPE_CHECKING:
    from trtc_exporter.state import TargetState
    from trtc_exporter.web import ExporterHandler

MAX_BODY = 10 << 20
log = logging.getLogger(__name__)


def _error(handler: ExporterHandler, status: int, *errors: str) -> None:
    handler.send_json(status, {"status": "error", "errors": list(errors)})


def _allowed(handler: ExporterHandler) -> bool:
    """Registration enabled, and the bearer token matches when one is configured."""
    registration = handler.exporter.config.registration
    if not registration.enabled:
        _error(handler, HTTPStatus.FORBIDDEN, "registration is disabled (registration.enabled)")
        return False
    token = handler.exporter.bearer_token()
    if token is None:
        return True  # basic auth of the web config protects every request
    given = handler.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token.reveal()}".encode()):
        handler.send_response(HTTPStatus.UNAUTHORIZED)
        handler.send_header("WWW-Authenticate", 'Bearer realm="trtc-exporter"')
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return False
    return True


def _read_json(handler: ExporterHandler) -> Any:
    try:
        length = int(handler.headers.get("Content-Length", "0"))
    except ValueError:
        length = -1
    if not 0 < length <= MAX_BODY:
        raise ValueError(f"body: need a JSON body of at most {MAX_BODY} bytes")
    try:
        return json.loads(handler.rfile.read(length))
    except ValueError:
        raise ValueError("body: not valid JSON") from None


def _split(document: Any, errors: Errors) -> tuple[Any, float | None]:
    """Accept one target, a list, or {"targets": [...], "ttl": "1h"}."""
    ttl_text = None
    if isinstance(document, dict) and "targets" in document:
        extra = set(document) - {"targets", "ttl"}
        for key in sorted(extra):
            errors.add(str(key), "unknown field")
        ttl_text = document.get("ttl")
        document = document["targets"]
    elif isinstance(document, dict):
        document = [document]
    ttl = None
    if ttl_text is not None:
        try:
            ttl = parse_duration(str(ttl_text)) or None
        except DurationError as exc:
            errors.add("ttl", str(exc))
    return document, ttl


def post_targets(handler: ExporterHandler) -> None:
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
    targets = parse_targets(raw, "targets", errors, exporter.config.api.region, source="api")
    if errors.lines:
        _error(handler, HTTPStatus.BAD_REQUEST, *errors.lines)
        return
    try:
        new = exporter.register(list(targets), ttl)
    except TargetLimitError as exc:
        _error(handler, HTTPStatus.TOO_MANY_REQUESTS, str(exc))
        return
    except RegistryError as exc:
        _error(handler, HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        return
    handler.send_json(HTTPStatus.OK, {"status": "success", "data": {
        "registered": len(targets), "new": len(new), "ids": [t.id for t in targets]}})


def delete_target(handler: ExporterHandler, target_id: str) -> None:
    if not _allowed(handler):
        return
    try:
        removed = handler.exporter.unregister(target_id)
    except RegistryError as exc:
        _error(handler, HTTPStatus.SERVICE_UNAVAILABLE, str(exc))
        return
    if not removed:
        _error(handler, HTTPStatus.NOT_FOUND, f"no registered target with id {target_id}")
        return
    handler.send_json(HTTPStatus.OK, {"status": "success", "data": {"deleted": target_id}})


def register_probed(handler: ExporterHandler, params: dict[str, str],
                    found: list[TargetState]) -> None:
    """blackbox-style discovery: an unknown probed target is registered (when allowed) and
    answered from its first poll on; the probe itself never calls the API. Probing a registered
    target again extends its TTL (written when less than half of it is left)."""
    exporter = handler.exporter
    registration = exporter.config.registration
    if not registration.allow_probe_registration:
        return
    now = exporter.clock.time()
    expiries = [exporter.sources.set.expiry_of(s.target.key) for s in found]
    if found and not any(e is not None and e - now < registration.probe_ttl / 2
                         for e in expiries):
        return
    raw: dict[str, Any] = {k: v for k, v in params.items()
                           if k in ("task_id", "session_id", "api", "region")}
    if "sdk_app_id" in params:
        raw["sdk_app_id"] = int(params["sdk_app_id"]) if params["sdk_app_id"].isdigit() else \
            params["sdk_app_id"]
    errors = Errors()
    targets = parse_targets([raw], "probe", errors, exporter.config.api.region, source="api")
    if errors.lines or not targets:
        return
    try:
        exporter.register(list(targets), registration.probe_ttl)
    except (TargetLimitError, RegistryError) as exc:
        log.warning("probe registration refused: %s", exc)
