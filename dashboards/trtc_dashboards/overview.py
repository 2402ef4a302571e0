"""Dashboard 1: TRTC transcription overview — what the monitored tasks are doing."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import stat, statetimeline
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from .common import (
    PREPARING_STUCK_SECONDS,
    STATUSES,
    TASK_LABELS,
    TASK_LEGEND,
    build_dashboard,
    instant,
    once_per_app,
    once_per_task,
    panel,
    query,
    row,
    sel,
    stacked_panel,
    stat_panel,
    table_panel,
    table_query,
    thresholds,
    timeseries_panel,
)

UID = "trtc-transcription-overview"
ON_TARGET = "on (" + ", ".join(("job", "instance", *TASK_LABELS)) + ")"
HIDDEN_COLUMNS = ("Time", "__name__")
RECENT_SECONDS = 86400  # "recently stopped" = within the last 24 hours


def _status(matcher: str) -> str:
    return f"trtc_ai_transcription_status{sel(matcher, region=True)} == 1"


def _status_is(name: str) -> str:
    return f'status="{name}"'


def _since_change() -> str:
    return f"time() - trtc_ai_transcription_status_change_time_seconds{sel(region=True)}"


def _status_code_expr() -> str:
    """One series per task whose value is the number of its current status (see STATUSES)."""
    parts = [f"({_status(_status_is(name))}) * {code}" for name, code, _ in STATUSES]
    return "max by (" + ", ".join(TASK_LABELS) + ") (\n  " + "\n  or ".join(parts) + "\n)"


def _status_mappings() -> list[model.ValueMapping]:
    options = {
        str(code): model.ValueMappingResult(text=name, color=color, index=index)
        for index, (name, code, color) in enumerate(STATUSES)
    }
    return [model.ValueMap(options=options)]


def _tasks_by_status(api: str, title: str) -> stat.Panel:
    return panel(
        stat_panel()
        .text_mode(common_model.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common_model.BigValueColorMode.VALUE),
        title,
        f"Monitored targets of api={api} per status right now (trtc_ai_transcription_tasks). "
        "Values are cached from the exporter's last poll.",
        "none",
        [
            instant(
                "sum by (status) ("
                + once_per_app(f"trtc_ai_transcription_tasks{sel(region=True, api=api)}", "status")
                + ")",
                "{{status}}",
            )
        ],
        width=8,
        height=5,
    )


def _now_row() -> list[Any]:
    poll_ok = f"trtc_ai_transcription_poll_success{sel(region=True)}"
    stuck = (
        "count(" + once_per_task(
            f"({_since_change()} > {PREPARING_STUCK_SECONDS})"
            f" and ignoring (status) ({_status(_status_is('Preparing'))})")
        + ") or vector(0)"
    )
    return [
        row("Now"),
        _tasks_by_status("ai_transcription", "Tasks by status — 1.0 (DescribeAITranscription)"),
        _tasks_by_status(
            "cloud_transcription", "Tasks by status — 2.0 (DescribeCloudTranscription)"
        ),
        panel(
            stat_panel(
                (None, "red"),
                (0.9, "orange"),
                (0.99, "green"),
                graph=common_model.BigValueGraphMode.AREA,
            ),
            "Targets polled successfully",
            "Share of targets whose last poll succeeded (trtc_ai_transcription_poll_success).",
            "percentunit",
            [query(f"sum({poll_ok}) / count({poll_ok})", "polled successfully")],
            width=4,
            height=5,
        ),
        panel(
            stat_panel((None, "green"), (1, "red")),
            "Stuck in Preparing",
            f"Tasks in Preparing for more than {PREPARING_STUCK_SECONDS // 60} minutes "
            "(the TrtcTaskStuckPreparing threshold).",
            "none",
            [instant(stuck, "stuck")],
            width=4,
            height=5,
        ),
    ]


def _history_row() -> list[Any]:
    poll = f"trtc_ai_transcription_poll_success{sel(region=True)}"
    return [
        row("History"),
        panel(
            statetimeline.Panel()
            .mappings(_status_mappings())
            .show_value(common_model.VisibilityMode.NEVER)
            .merge_values(True)
            .row_height(0.8)
            .legend(common_builder.VizLegendOptions().show_legend(False))
            .thresholds(thresholds((None, "text"))),
            "Status per task",
            "Status of every monitored task over time, one row per target. Colours: Idle blue, "
            "Preparing yellow, InProgress green, Stopped/Exited purple, Unknown orange, "
            "NotFound red.",
            "none",
            [query(_status_code_expr(), TASK_LEGEND)],
            width=24,
            height=10,
        ),
        panel(
            stacked_panel(30),
            "Tasks by status over time",
            "Monitored targets per API generation and status (trtc_ai_transcription_tasks), "
            "stacked.",
            "none",
            [
                query(
                    "sum by (api, status) ("
                    + once_per_app(f"trtc_ai_transcription_tasks{sel(region=True)}", "status")
                    + ")",
                    "{{api}} {{status}}",
                )
            ],
        ),
        panel(
            timeseries_panel((None, "green"), (1, "red")),
            "Targets whose last poll failed",
            "Targets per API generation whose most recent poll failed (poll_success == 0); the "
            "exporter's /api/v1/targets page shows each one's error code.",
            "none",
            [query(f"count by (api) ({once_per_task(f'{poll} == 0')})"
                   f" or sum by (api) ({poll}) * 0", "{{api}}")],
        ),
    ]


def _attention_row() -> list[Any]:
    preparing = _status(_status_is("Preparing"))
    stopped = _status('status=~"Stopped|Exited"')
    return [
        row("Tasks needing attention"),
        panel(
            table_panel(HIDDEN_COLUMNS, "In Preparing for", red_from=PREPARING_STUCK_SECONDS),
            "Tasks in Preparing",
            "Tasks currently in Preparing (1.0 only) and for how long; red beyond the "
            "TrtcTaskStuckPreparing threshold. Preparing normally lasts seconds.",
            "s",
            [table_query(f"({_since_change()}) and ignoring (status) ({preparing})")],
        ),
        panel(
            table_panel(HIDDEN_COLUMNS, "Stopped for", desc=False),
            "Recently stopped",
            "Targets that are Stopped (1.0) or Exited (2.0) and changed to that status in the "
            "last 24 hours, most recent first.",
            "s",
            [
                table_query(
                    f"(({_since_change()}) * {ON_TARGET} group_left (status) ({stopped}))"
                    f" < {RECENT_SECONDS}"
                )
            ],
        ),
        panel(
            table_panel(HIDDEN_COLUMNS, "Started"),
            "Task start times",
            "StartTime reported by the API for every target that has one "
            "(trtc_ai_transcription_start_time_seconds), newest first.",
            "dateTimeAsIso",
            [
                table_query(
                    f"(trtc_ai_transcription_start_time_seconds{sel(region=True)} > 0) * 1000"
                )
            ],
        ),
        panel(
            table_panel((*HIDDEN_COLUMNS, "Value")),
            "Resolved task IDs",
            "The TaskId the API returned for each target (trtc_ai_transcription_info): for "
            "session targets (sdk_app_id + session_id) this is the task behind the session.",
            "none",
            [table_query(f"trtc_ai_transcription_info{sel(region=True)}")],
        ),
    ]


def _callbacks_row() -> list[Any]:
    """What TRTC's event callbacks tell (only exporters with --webhook.listen-address)."""
    sentences = f"trtc_ai_transcription_sentences_total{sel(region=True)}"
    per_task = f"max by (api, region, sdk_app_id, task_id, session_id) (rate({sentences}[5m]))"
    silent = f"trtc_ai_transcription_silent{sel(region=True)} == 1"
    failures = f"trtc_ai_transcription_start_failures_total{sel()}"
    return [
        row("Callbacks (TRTC event webhooks)"),
        panel(
            timeseries_panel(),
            "Sentences per minute per app",
            "Complete sentences TRTC reported per minute (callbacks 903/1403), summed per app, "
            "each task counted once whichever exporters received it. A running app at 0 "
            "transcribes nothing.",
            "none",
            [query(f"sum by (sdk_app_id) ({per_task}) * 60", "app {{sdk_app_id}}")],
            width=12,
        ),
        panel(
            stat_panel((None, "green"), (1, "red")),
            "Silent tasks",
            "Tasks InProgress for longer than webhook.silence_after with no sentence "
            "(trtc_ai_transcription_silent); the TrtcTaskSilent alert fires 5 minutes later.",
            "none",
            [instant(f"count({once_per_task(silent)}) or vector(0)", "silent")],
            width=4,
            height=8,
        ),
        panel(
            table_panel((*HIDDEN_COLUMNS, "Value")),
            "Silent tasks — which",
            "Each silent task with its identity labels: check its room's audio, subscribed "
            "user and language.",
            "none",
            [table_query(once_per_task(silent))],
            width=8,
            height=8,
        ),
        panel(
            timeseries_panel((None, "green"), (1, "red")),
            "Failed task starts",
            "Starts TRTC reported as failed (callback 901/1401 with Status 1) in the last hour, "
            "per app (trtc_ai_transcription_start_failures_total).",
            "none",
            [query(f"sum by (api, sdk_app_id) (increase({failures}[1h]))",
                   "{{api}} app {{sdk_app_id}}")],
            width=24,
        ),
    ]


def build() -> Any:
    """Build the overview dashboard."""
    return build_dashboard(
        UID,
        "TRTC transcription overview",
        "Status of the TRTC AI transcription tasks monitored by trtc-transcription-exporter.",
        "trtc_ai_transcription_status",
        _now_row(),
        _history_row(),
        _attention_row(),
        _callbacks_row(),
    )
