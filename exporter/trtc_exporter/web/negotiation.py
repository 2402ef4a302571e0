"""Content negotiation for /metrics and /probe: ``Accept`` and ``Accept-Encoding`` as RFC 9110
defines them (§12.4.2 q-values, §12.5.1 Accept, §12.5.3 Accept-Encoding).

Media types, parameter names and codings are case-insensitive; a list is comma separated; an
entry with ``q=0`` means "not acceptable"; an entry whose q is not a qvalue (``q=abc``,
``q=1.5``, ``q=0.5000``) is invalid and ignored, as if absent; among acceptable entries the
highest q wins and, at equal q, the earlier one (Prometheus lists its preferences in order,
each with its own q). The encoders are client_python's (``choose_encoder``), asked about one
entry at a time, so the formats and their ``version``/``escaping`` parameters stay exactly
client_python's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder

__all__ = ["accepts_gzip", "choose_format", "parse_list"]

log = logging.getLogger("trtc_exporter.web")
Encoder = Callable[..., bytes]
_FORMATS = ("application/openmetrics-text", "text/plain")
_ANY = ("*/*", "text/*", "application/*")
QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
"""RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )."""


def _quality(params: list[str]) -> tuple[float | None, list[str]]:
    """The q of an entry's parameters (1 when absent; None when a q is not a qvalue, which makes
    the whole element invalid) and the other parameters."""
    q: float | None = 1.0
    rest = []
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            q = float(value.strip()) if QVALUE.fullmatch(value.strip()) else None
        elif param.strip():
            rest.append(param.strip())
    return q, rest


def _entries(header: str) -> list[tuple[float, int, str, list[str]]]:
    """(q, position, lower-cased value, other parameters) of every valid element, q=0 ones
    included (to tell "refused" from "not mentioned"); an element with an invalid qvalue is
    left out, as if it were not there."""
    entries = []
    for index, item in enumerate(header.split(",")):
        value, *params = item.split(";")
        q, rest = _quality(params)
        if value.strip() and q is not None:
            entries.append((q, index, value.strip().lower(), rest))
    return entries


def parse_list(header: str) -> list[tuple[str, list[str], float]]:
    """(lower-cased value, its other parameters, q) per valid entry, best first; q=0 entries
    dropped."""
    ranked = sorted((-q, index, value, rest) for q, index, value, rest in _entries(header)
                    if q > 0)
    return [(value, rest, -neg_q) for neg_q, _, value, rest in ranked]


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
    entries = _entries(accept_encoding or "")
    listed = {value for _, _, value, _ in entries}
    acceptable = {value for q, _, value, _ in entries if q > 0}
    if "gzip" in listed or "x-gzip" in listed:
        return "gzip" in acceptable or "x-gzip" in acceptable
    return "*" in acceptable
