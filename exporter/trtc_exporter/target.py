"""What one monitored task or session is, and how a target entry is validated.

Config targets, target files and the registration API all go through :func:`parse_target`, so the
same mistake gets the same message wherever it is made.
"""

from __future__ import annotations

import hashlib
import json
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trtc_exporter.errors import Errors, is_text, key_text, show, type_name
from trtc_exporter.generations import (
    ACTIONS,
    AI_TRANSCRIPTION,
    ALL_REGIONS,
    CLOUD_TRANSCRIPTION,
    GENERATIONS,
    REGIONS,
)

IDENTITY_LABELS = ("api", "region", "task_id", "sdk_app_id", "session_id")
RESERVED_LABELS = frozenset(
    IDENTITY_LABELS + ("status", "resolved_task_id", "job", "instance", "action", "code")
)
MAX_SDK_APP_ID = 2**64 - 1  # the API's SdkAppId is an unsigned 64-bit integer
MAX_ID_CHARS = 256
"""Longest TaskId or SessionId accepted (and longest label value). TRTC documents no length for
either; the TaskId in the docs' examples is 81 characters, a SessionId is the caller's own
"unique Id" (StartAITranscription). 256 leaves room for both and keeps every series far below
the 1 024-character ``label_value_length_limit`` operators set in Prometheus, past which the
whole scrape fails. Shared with the webhook's TaskId bound."""
MAX_LABEL_NAME_CHARS = 128
"""Longest extra label name; Prometheus' ``label_name_length_limit`` is commonly set to 128+."""
BIDI_CONTROLS = frozenset(map(chr, (*range(0x202A, 0x202F), *range(0x2066, 0x206A))))
"""Bidi embeddings, overrides and isolates (LRE … RLO, LRI … PDI): they reorder the text shown
after them in a page, a log line or a terminal ("Trojan Source", CVE-2021-42574)."""
TARGET_FIELDS = frozenset(
    {"task_id", "sdk_app_id", "session_id", "region", "labels", "api", "poll_interval",
     "translation", "account"}
)


@dataclass(frozen=True, slots=True)
class Target:
    """One thing to poll: a TaskId, or an SdkAppId + SessionId pair (1.0 only)."""

    api: str
    region: str
    task_id: str = ""
    sdk_app_id: int | None = None
    session_id: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    poll_interval: float | None = None
    translation: bool = False
    account: str = ""
    """The ``accounts:`` entry that polls it ("" for the config's default account); not part of
    the identity, which the series labels carry."""
    source: str = field(default="config", compare=False)
    key: tuple[str, ...] = field(init=False, compare=False, repr=False)
    """The identity: two targets with the same key are the same series (computed once: it is
    the dictionary key of every table, looked up on every poll and merge). All strings, so any
    sort by key is total."""
    lookup: tuple[str, ...] = field(init=False, compare=False, repr=False)
    """What the API is asked. A 1.0 TaskId lookup sends no SdkAppId, so ``task t1`` and
    ``task t1`` with an ``sdk_app_id`` poll the same task: two targets with one lookup are
    duplicates (the sources refuse or skip the second), never two series of one task."""
    action: str = field(init=False, compare=False, repr=False)
    """The Describe action of the target's API generation."""
    lane: str = field(init=False, compare=False, repr=False)
    """The budget this target spends: its action, prefixed by ``account/`` when it names an
    account (account names hold no ``/``). Tencent limits each account and action. Kept, like
    ``key``: the poller asks it about twenty times per poll."""
    _body: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        app = "" if self.sdk_app_id is None else str(self.sdk_app_id)
        key = (self.api, self.region, self.task_id, app, self.session_id)
        object.__setattr__(self, "key", key)
        by_task_only = self.task_id and self.api in GENERATIONS and \
            GENERATIONS[self.api].session_lookup
        object.__setattr__(self, "lookup", key[:3] if by_task_only else key)
        action = ACTIONS[self.api]
        object.__setattr__(self, "action", action)
        # interned: one string per account and action, not a copy per target (10 000 targets)
        lane = sys.intern(f"{self.account}/{action}") if self.account else action
        object.__setattr__(self, "lane", lane)

    @property
    def body(self) -> bytes:
        """The Describe request's JSON body (UTF-8): the lookup as the action's parameters
        (``Generation.request_params``). Built at the first poll and kept: every poll of the
        target sends the same bytes (issue 16, goal 5: the encoding was 2 % of a request's CPU)."""
        body = self._body
        if body is None:
            params = GENERATIONS[self.api].request_params(self.task_id, self.sdk_app_id,
                                                          self.session_id)
            body = json.dumps(params).encode("utf-8")
            object.__setattr__(self, "_body", body)  # the same bytes if two threads race
        return body

    @property
    def id(self) -> str:
        """A short stable id for URLs (``DELETE /api/v1/targets/{id}``) and logs."""
        return hashlib.sha256("\x00".join(self.key).encode()).hexdigest()[:16]

    @property
    def identity_labels(self) -> dict[str, str]:
        """The identity as label name → value (api, region, task_id, sdk_app_id, session_id)."""
        return dict(zip(IDENTITY_LABELS, self.key, strict=True))

    def describe(self) -> str:
        """A human name for logs: the task id or ``app/session``."""
        if self.task_id:
            return f"task {self.task_id}"
        return f"session {self.sdk_app_id}/{self.session_id}"


def duplicate_text(where: str, first: Target, second: Target) -> str:
    """Why ``second`` duplicates ``first`` (found at ``where``), for config and API errors."""
    if first.key == second.key:
        return f"duplicate of {where} ({second.describe()})"
    return (f"the same {second.describe()} as {where}: a 1.0 TaskId names one task whatever "
            f"sdk_app_id says (sdk_app_id {first.sdk_app_id or 'unset'} there, "
            f"{second.sdk_app_id or 'unset'} here); keep one entry")


def parse_target(raw: object, path: str, errors: Errors, default_region: str,
                 source: str = "config", extra_regions: frozenset[str] = frozenset()
                 ) -> Target | None:
    """Validate one target entry; None (with errors recorded) when it is unusable.

    ``extra_regions`` (``api.extra_regions``) are accepted for every API generation.
    """
    before = errors.count
    entry = errors.mapping(raw, path, TARGET_FIELDS)
    if not isinstance(raw, Mapping):
        return None
    typo = errors.count > before  # an unknown key is likely a misspelt identity field
    prefix = path + "."
    api = errors.string(entry, "api", prefix, AI_TRANSCRIPTION) or ""
    if api not in ACTIONS:
        errors.add(prefix + "api", f"must be one of {', '.join(ACTIONS)}, got {show(api)}")
        api = AI_TRANSCRIPTION
    region = _parse_region(entry, prefix, errors, api, default_region, extra_regions)
    task_id = _bounded(errors.string(entry, "task_id", prefix, "") or "", prefix + "task_id",
                       errors)
    sdk_app_id = errors.integer(entry, "sdk_app_id", prefix, None, minimum=1,
                                maximum=MAX_SDK_APP_ID)
    session_id = _bounded(errors.string(entry, "session_id", prefix, "") or "",
                          prefix + "session_id", errors)
    if not typo:
        _check_identity(api, entry, path, errors)
    labels = _parse_labels(entry.get("labels"), prefix + "labels", errors)
    interval = errors.duration(entry, "poll_interval", prefix, 0.0) or None
    translation = errors.boolean(entry, "translation", prefix, False)
    account = errors.string(entry, "account", prefix, "") or ""
    if errors.count > before:
        return None
    return Target(api=api, region=region, task_id=task_id, sdk_app_id=sdk_app_id,
                  session_id=session_id, labels=labels, poll_interval=interval,
                  translation=translation, account=account, source=source)


def _parse_region(entry: Mapping[str, Any], prefix: str, errors: Errors, api: str,
                  default_region: str, extra: frozenset[str]) -> str:
    """The target's region, or the inherited default, checked against the API generation."""
    regions = f"{ACTIONS[api]} ({', '.join(REGIONS[api])})"
    allowed = frozenset(REGIONS[api]) | extra
    region = errors.string(entry, "region", prefix, None)
    if region is None:
        inherited = entry.get("region") is None
        if inherited and default_region in ALL_REGIONS and default_region not in allowed:
            errors.add(prefix + "region", f"api.region {default_region!r} is not a region of "
                                          f"{regions}; set region on this target")
        return default_region
    if region not in allowed:
        errors.add(prefix + "region", f"{show(region)} is not a region of {regions}; a region "
                                      f"not listed yet goes into api.extra_regions")
    return region


def _given(entry: Mapping[str, Any], key: str) -> bool:
    """True when the entry sets key to something (null and "" count as not set)."""
    return entry.get(key) not in (None, "")


def _check_identity(api: str, entry: Mapping[str, Any], path: str, errors: Errors) -> None:
    task_id, sdk_app_id, session_id = (_given(entry, k)
                                       for k in ("task_id", "sdk_app_id", "session_id"))
    if api == CLOUD_TRANSCRIPTION:
        if entry.get("session_id") is not None:
            errors.add(f"{path}.session_id",
                       "not supported by cloud_transcription (2.0 has no session lookup)")
        if not (task_id and sdk_app_id):
            errors.add(path, "a cloud_transcription target needs both task_id and sdk_app_id")
        return
    if task_id and session_id:
        errors.add(path, "set either task_id or sdk_app_id + session_id, not both")
    elif not task_id and not session_id:
        errors.add(path, "needs task_id, or sdk_app_id + session_id")
    elif session_id and not sdk_app_id:
        errors.add(f"{path}.sdk_app_id", "is required with session_id")


def _parse_labels(raw: object, path: str, errors: Errors) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        errors.add(path, "must be a mapping of label names to strings")
        return ()
    pairs = []
    for name, value in raw.items():
        where = f"{path}.{key_text(name)}"
        if not errors.label_name(name, where, RESERVED_LABELS):
            continue
        if len(name) > MAX_LABEL_NAME_CHARS:
            errors.add(where, f"label name longer than {MAX_LABEL_NAME_CHARS} characters")
            continue
        if not isinstance(value, str):  # YAML keeps label text as written; JSON 1.10 is 1.1
            errors.add(where, f"label value must be a string, got {type_name(value)}; quote it")
            continue
        pairs.append((name, _bounded(value, where, errors)))
    return tuple(sorted(pairs))


def _bounded(value: str, where: str, errors: Errors) -> str:
    """``value``, with an error recorded when :func:`id_problem` finds one."""
    problem = id_problem(value)
    if problem is not None:
        errors.add(where, problem)
    return value


def id_problem(value: str, limit: int = MAX_ID_CHARS) -> str | None:
    """Why ``value`` cannot be a TaskId, SessionId or label value (None when it can): over
    ``limit`` characters, or a :func:`text_problem`. The one check for config, target files,
    registrations, ``/probe`` and (with its own limits) TRTC callbacks."""
    if is_text(value) and len(value) > limit:  # bounded before the per-character scan
        return (f"longer than {limit} characters (got {len(value)}); TRTC ids and label "
                f"values must fit in {limit}")
    return text_problem(value)


def text_problem(value: str) -> str | None:
    """Why ``value`` is not safe text for an id (None when it is): a lone surrogate (no UTF-8
    for it), a control character (Unicode category Cc: NUL, ESC, newline, C1), a line or
    paragraph separator (they end lines in logs and scripts), or a bidi control
    (:data:`BIDI_CONTROLS`). TRTC ids are plain text; these would only ever be mistakes or
    attacks on whoever reads them."""
    if not is_text(value):
        return "must be valid Unicode text (found a lone surrogate)"
    for char in value:
        kind = _UNSAFE.get(unicodedata.category(char))
        if kind is None and char in BIDI_CONTROLS:
            kind = "the bidirectional control"
        if kind is not None:
            return f"contains {kind} U+{ord(char):04X}"
    return None


_UNSAFE = {"Cc": "the control character", "Zl": "the line separator",
           "Zp": "the paragraph separator"}


def in_shard(target: Target, index: int, count: int) -> bool:
    """Stable assignment of targets to ``--shard index/count`` replicas, by identity hash."""
    return count <= 1 or int(target.id, 16) % count == index
