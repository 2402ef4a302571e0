"""What one monitored task or session is, and how a target entry is validated.

Config targets, target files and the registration API all go through :func:`parse_target`, so the
same mistake gets the same message wherever it is made.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trtc_exporter.validation import Errors

AI_TRANSCRIPTION = "ai_transcription"
CLOUD_TRANSCRIPTION = "cloud_transcription"

ACTIONS = {AI_TRANSCRIPTION: "DescribeAITranscription",
           CLOUD_TRANSCRIPTION: "DescribeCloudTranscription"}
REGIONS = {
    AI_TRANSCRIPTION: ("ap-guangzhou", "ap-singapore", "ap-tokyo", "na-siliconvalley"),
    CLOUD_TRANSCRIPTION: ("ap-guangzhou", "ap-hongkong", "ap-singapore"),
}
ALL_REGIONS = frozenset(r for regions in REGIONS.values() for r in regions)
IDENTITY_LABELS = ("api", "region", "task_id", "sdk_app_id", "session_id")
RESERVED_LABELS = frozenset(
    IDENTITY_LABELS + ("status", "resolved_task_id", "job", "instance", "action", "code")
)
TARGET_FIELDS = frozenset(
    {"task_id", "sdk_app_id", "session_id", "region", "labels", "api", "poll_interval",
     "translation"}
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
    source: str = field(default="config", compare=False)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """The identity: two targets with the same key are the same series."""
        app = "" if self.sdk_app_id is None else str(self.sdk_app_id)
        return (self.api, self.region, self.task_id, app, self.session_id)

    @property
    def id(self) -> str:
        """A short stable id for URLs (``DELETE /api/v1/targets/{id}``) and logs."""
        return hashlib.sha256("\x00".join(self.key).encode()).hexdigest()[:16]

    @property
    def action(self) -> str:
        return ACTIONS[self.api]

    @property
    def identity_labels(self) -> dict[str, str]:
        return dict(zip(IDENTITY_LABELS, self.key, strict=True))

    def describe(self) -> str:
        """A human name for logs: the task id or ``app/session``."""
        if self.task_id:
            return f"task {self.task_id}"
        return f"session {self.sdk_app_id}/{self.session_id}"


def parse_target(raw: object, path: str, errors: Errors, default_region: str,
                 source: str = "config") -> Target | None:
    """Validate one target entry; None (with errors recorded) when it is unusable."""
    before = len(errors.lines)
    entry = errors.mapping(raw, path, TARGET_FIELDS)
    if not isinstance(raw, Mapping):
        return None
    prefix = path + "."
    api = errors.string(entry, "api", prefix, AI_TRANSCRIPTION) or AI_TRANSCRIPTION
    if api not in ACTIONS:
        errors.add(prefix + "api", f"must be one of {', '.join(ACTIONS)}, got {api!r}")
        api = AI_TRANSCRIPTION
    region = errors.string(entry, "region", prefix, default_region) or default_region
    if region not in REGIONS[api] and (region != default_region or default_region in ALL_REGIONS):
        errors.add(prefix + "region",
                   f"{region!r} is not a region of {ACTIONS[api]} ({', '.join(REGIONS[api])})")
    task_id = errors.string(entry, "task_id", prefix, "") or ""
    sdk_app_id = errors.integer(entry, "sdk_app_id", prefix, None, minimum=1)
    session_id = errors.string(entry, "session_id", prefix, "") or ""
    _check_identity(api, task_id, sdk_app_id, session_id, entry, path, errors)
    labels = _parse_labels(entry.get("labels"), prefix + "labels", errors)
    interval = errors.duration(entry, "poll_interval", prefix, 0.0) or None
    translation = errors.boolean(entry, "translation", prefix, False)
    if len(errors.lines) > before:
        return None
    return Target(api=api, region=region, task_id=task_id, sdk_app_id=sdk_app_id,
                  session_id=session_id, labels=labels, poll_interval=interval,
                  translation=translation, source=source)


def _check_identity(api: str, task_id: str, sdk_app_id: int | None, session_id: str,
                    entry: Mapping[str, Any], path: str, errors: Errors) -> None:
    if api == CLOUD_TRANSCRIPTION:
        if session_id or "session_id" in entry:
            errors.add(f"{path}.session_id",
                       "not supported by cloud_transcription (2.0 has no session lookup)")
        if not task_id or "sdk_app_id" not in entry:
            errors.add(path, "a cloud_transcription target needs both task_id and sdk_app_id")
        return
    if task_id and session_id:
        errors.add(path, "set either task_id or sdk_app_id + session_id, not both")
    elif not task_id and not session_id:
        errors.add(path, "needs task_id, or sdk_app_id + session_id")
    elif session_id and "sdk_app_id" not in entry:
        errors.add(f"{path}.sdk_app_id", "is required with session_id")


def _parse_labels(raw: object, path: str, errors: Errors) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        errors.add(path, "must be a mapping of label names to strings")
        return ()
    pairs = []
    for name, value in raw.items():
        if not errors.label_name(name, f"{path}.{name}", RESERVED_LABELS):
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            errors.add(f"{path}.{name}", "label value must be a string")
            continue
        pairs.append((str(name), str(value)))
    return tuple(sorted(pairs))


def in_shard(target: Target, index: int, count: int) -> bool:
    """Stable assignment of targets to ``--shard index/count`` replicas, by identity hash."""
    return count <= 1 or int(target.id, 16) % count == index
