"""Content negotiation for /metrics and /probe: ``Accept`` and ``Accept-Encoding`` as RFC 9110
defines them (§12.4.2 q-values, §12.5.1 Accept, §12.5.3 Accept-Encoding).

Media types, parameter names and codings are case-insensitive; a list is comma separated; an
entry with ``q=0`` means "not acceptable"; among acceptable entries the highest q wins and, at
equal q, the earlier one (Prometheus lists its preferences in order, each with its own q). The
encoders are client_python's (``choose_encoder``), asked about one entry at a time, so the
formats and their ``version``/``escaping`` parameters stay exactly client_python's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder

__all__ = ["accepts_gzip", "choose_format", "parse_list"]

log = logging.getLogger("trtc_exporter.web")
Encoder = Callable[..., bytes]
_FORMATS = ("application/openmetrics-text", "text/plain")
_ANY = ("*/*", "text/*", "application/*")


def _quality(params: list[str]) -> tuple[float, list[str]]:
    """The q of an entry's parameters (1 when absent or malformed: lenient, as browsers are)
    and the other parameters."""
    q, rest = 1.0, []
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = min(max(float(value.strip()), 0.0), 1.0)
            except ValueError:
                q = 1.0
        elif param.strip():
            rest.append(param.strip())
    return q, rest


def parse_list(header: str) -> list[tuple[str, list[str], float]]:
    """(lower-cased value, its other parameters, q) per entry, best first; q=0 entries dropped."""
    entries = []
    for index, item in enumerate(header.split(",")):
        value, *params = item.split(";")
        q, rest = _quality(params)
        if value.strip() and q > 0:
            entries.append((-q, index, value.strip().lower(), rest))
    return [(value, rest, -neg_q) for neg_q, _, value, rest in sorted(entries)]


def choose_format(accept: str) -> tuple[Encoder, str]:
    """(encoder, Content-Type) for an ``Accept`` header; the text format 0.0.4 by default."""
    for media_type, params, _ in parse_list(accept or ""):
        if media_type in _FORMATS:
            try:
                encoder, content_type = choose_encoder(";".join([media_type, *params]))
            except Exception as exc:  # e.g. "version=abc": client_python raises
                log.debug("Accept entry %s ignored: %s", media_type, exc)
                continue
            if content_type != CONTENT_TYPE_PLAIN_0_0_4 or media_type == "text/plain":
                return encoder, content_type
        elif media_type in _ANY:
            break
    return choose_encoder("")


def accepts_gzip(accept_encoding: str) -> bool:
    """True when gzip is acceptable: listed with q > 0, or not listed and ``*`` is (q > 0)."""
    codings = {value: q for value, _, q in parse_list(accept_encoding or "")}
    listed = {value for value, _, _ in _all_entries(accept_encoding or "")}
    if "gzip" in listed or "x-gzip" in listed:
        return "gzip" in codings or "x-gzip" in codings
    return "*" in codings


def _all_entries(header: str) -> list[tuple[str, list[str], float]]:
    """Every entry, q=0 ones included (to tell "refused" from "not mentioned")."""
    return [(item.split(";")[0].strip().lower(), [], 0.0) for item in header.split(",")]
