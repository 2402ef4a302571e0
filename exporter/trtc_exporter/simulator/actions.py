"""The six TRTC transcription actions: parameter validation and business logic.

Each handler takes the decoded JSON body and returns the success fields (``RequestId`` is added by
the caller) or raises ``ApiError``. Unknown parameters are refused with ``UnknownParameter`` as API
3.0 does, which catches client typos that a lenient fake would hide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from trtc_exporter.simulator.envelope import (
    ApiError,
    beijing_time,
    invalid,
    missing,
    task_not_exist,
    unknown_parameter,
)
from trtc_exporter.simulator.tasks import (
    AI_MAX_LIFETIME,
    Api,
    StartOutcome,
    Task,
    TaskStore,
    TaskView,
)

Phases = tuple[tuple[str, float], ...]
PRUNE_AFTER = 3600.0
"""Tasks created through the API are forgotten an hour after they are gone (bounded memory)."""


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What a handler may use: the task store, the request's time and region, settings."""

    store: TaskStore
    now: float
    region: str
    new_task_id: Callable[[Api], str]
    created_phases: Mapping[Api, Phases]
    quotas: Mapping[int, int]
    cloud_start_time_ms: bool = False


Handler = Callable[[ActionContext, dict[str, Any]], dict[str, Any]]


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise unknown_parameter(key)


def _str(body: dict[str, Any], name: str, prefix: str = "", *, empty: bool = False) -> str:
    if name not in body:
        raise missing(prefix + name)
    value = body[name]
    if not isinstance(value, str):
        raise invalid(prefix + name, "must be a string")
    if not value and not empty:
        raise invalid(prefix + name, "must not be empty")
    return value


def _int(body: dict[str, Any], name: str, default: int | None = None) -> int:
    if name not in body:
        if default is None:
            raise missing(name)
        return default
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(name, "must be an integer")
    return value


def _obj(body: dict[str, Any], name: str, *, required: bool = True) -> dict[str, Any]:
    if name not in body:
        if required:
            raise missing(name)
        return {}
    value = body[name]
    if not isinstance(value, dict):
        raise invalid(name, "must be an object")
    return value


def _task_id(body: dict[str, Any]) -> str:
    """A TaskId that is present, non-empty and plausible (printable ASCII, at most 256 chars)."""
    task_id = _str(body, "TaskId")
    if len(task_id) > 256 or any(not 0x21 <= ord(c) <= 0x7E for c in task_id):
        raise ApiError("InvalidParameter.TaskId", "TaskId parameter error.")
    return task_id


def _visible(view: TaskView | None, api: Api, ctx: ActionContext, sdk: int | None) -> TaskView:
    """Tasks live in one region and one API generation; elsewhere they do not exist."""
    if view is None or view.api is not api or view.region != ctx.region:
        raise task_not_exist()
    if sdk is not None and view.sdk_app_id != sdk:
        raise task_not_exist()
    return view


def _start(ctx: ActionContext, task: Task) -> dict[str, Any]:
    ctx.store.prune(ctx.now, PRUNE_AFTER)
    quota = ctx.quotas.get(task.sdk_app_id)
    outcome = ctx.store.start(task, ctx.now, quota)
    if outcome is StartOutcome.EXISTS:
        raise ApiError("FailedOperation.TaskExist", "The task already exists.")
    if outcome is StartOutcome.QUOTA:
        raise ApiError(
            "ResourceInsufficient.RequestRejection",
            f"SdkAppId {task.sdk_app_id} already runs its limit of {quota} concurrent tasks.",
        )
    return {"TaskId": task.task_id}


def _capped(phases: Phases, lifetime: float) -> Phases:
    """Shorten InProgress so that the task starts stopping ``lifetime`` seconds after creation."""
    before = sum(d for name, d in phases[: [n for n, _ in phases].index("in_progress")])
    return tuple(
        (name, max(0.0, min(d, lifetime - before)) if name == "in_progress" else d)
        for name, d in phases
    )


def describe_ai(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """DescribeAITranscription: by TaskId, or by SdkAppId + SessionId when TaskId is ``""``."""
    _only(body, {"TaskId", "SdkAppId", "SessionId"})
    if _str(body, "TaskId", empty=True):
        view = ctx.store.view(_task_id(body), ctx.now)
    else:
        sdk = _int(body, "SdkAppId")
        view = ctx.store.find_session(sdk, _str(body, "SessionId"), ctx.now)
    view = _visible(view, Api.AI, ctx, None)
    fields: dict[str, Any] = {
        "StartTime": beijing_time(view.start_time),
        "Status": view.status,
        "TaskId": view.task_id,
    }
    if view.session_id:
        fields["SessionId"] = view.session_id
    return fields


def start_ai(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """StartAITranscription: dedupe on SessionId, else on room + robot UserId; 10 h lifetime."""
    _only(body, {"SdkAppId", "RoomId", "TranscriptionParams", "SessionId", "RoomIdType",
                 "RecognizeConfig", "TranslationConfig"})  # fmt: skip
    sdk = _int(body, "SdkAppId")
    room = _str(body, "RoomId")
    params = _obj(body, "TranscriptionParams")
    user = _str(params, "UserId", "TranscriptionParams.")
    _str(params, "UserSig", "TranscriptionParams.")
    session = _str(body, "SessionId", empty=True) if "SessionId" in body else ""
    room_type = _int(body, "RoomIdType", 0)
    _obj(body, "RecognizeConfig", required=False)
    _obj(body, "TranslationConfig", required=False)
    key = ("session", sdk, session) if session else ("room", sdk, room, room_type, user)
    phases = _capped(ctx.created_phases[Api.AI], AI_MAX_LIFETIME)
    task = Task(ctx.new_task_id(Api.AI), Api.AI, sdk, ctx.region, phases, ctx.now,
                session_id=session or None, dedupe_key=key)  # fmt: skip
    return _start(ctx, task)


def stop_ai(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """StopAITranscription: the task shows Stopped while it cleans up, then is gone."""
    _only(body, {"TaskId"})
    task_id = _task_id(body)
    _visible(ctx.store.view(task_id, ctx.now), Api.AI, ctx, None)
    ctx.store.stop(task_id, ctx.now)
    return {}


def create_cloud(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """CreateCloudTranscription: one robot per room and UserId; runs until deleted."""
    _only(body, {"SdkAppId", "RoomId", "RoomIdType", "TranscriptionParam", "AsrParam",
                 "TranslationParam", "TTSParam"})  # fmt: skip
    sdk = _int(body, "SdkAppId")
    room = _str(body, "RoomId")
    room_type = _int(body, "RoomIdType")
    if room_type not in (0, 1):
        raise invalid("RoomIdType", "must be 0 (integer room) or 1 (string room)")
    params = _obj(body, "TranscriptionParam")
    user = _str(params, "UserId", "TranscriptionParam.")
    _str(params, "UserSig", "TranscriptionParam.")
    _obj(body, "AsrParam")
    _obj(body, "TranslationParam", required=False)
    if "TTSParam" in body and not isinstance(body["TTSParam"], list):
        raise invalid("TTSParam", "must be an array")
    task = Task(ctx.new_task_id(Api.CLOUD), Api.CLOUD, sdk, ctx.region,
                ctx.created_phases[Api.CLOUD], ctx.now,
                dedupe_key=("room", sdk, room, room_type, user))  # fmt: skip
    return _start(ctx, task)


def describe_cloud(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """DescribeCloudTranscription: needs SdkAppId and TaskId; errors once the task has ended."""
    _only(body, {"SdkAppId", "TaskId"})
    sdk = _int(body, "SdkAppId")
    view = _visible(ctx.store.view(_task_id(body), ctx.now), Api.CLOUD, ctx, sdk)
    scale = 1000 if ctx.cloud_start_time_ms else 1
    start = int(view.start_time * scale)
    return {"StartTime": start, "Status": view.status, "TaskId": view.task_id}


def delete_cloud(ctx: ActionContext, body: dict[str, Any]) -> dict[str, Any]:
    """DeleteCloudTranscription: the task shows Exited for a while, then is gone."""
    _only(body, {"SdkAppId", "TaskId"})
    sdk = _int(body, "SdkAppId")
    task_id = _task_id(body)
    _visible(ctx.store.view(task_id, ctx.now), Api.CLOUD, ctx, sdk)
    ctx.store.stop(task_id, ctx.now)
    return {"TaskId": task_id}


ACTIONS: dict[str, tuple[Api, Handler]] = {
    "DescribeAITranscription": (Api.AI, describe_ai),
    "StartAITranscription": (Api.AI, start_ai),
    "StopAITranscription": (Api.AI, stop_ai),
    "CreateCloudTranscription": (Api.CLOUD, create_cloud),
    "DescribeCloudTranscription": (Api.CLOUD, describe_cloud),
    "DeleteCloudTranscription": (Api.CLOUD, delete_cloud),
}
"""Action name -> (API generation, handler). The generation decides the accepted regions."""

DESCRIBE_ACTIONS = frozenset({"DescribeAITranscription", "DescribeCloudTranscription"})
