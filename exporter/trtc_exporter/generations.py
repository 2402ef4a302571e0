"""One table per API generation: its label value, action, regions, states and request body.

To add a generation, add one :class:`Generation` to :data:`GENERATIONS`; config validation, the
client's request body, the status StateSet and the budget's per-action limiters all read it.

Sources: ``DescribeAITranscription`` (1.0) and ``DescribeCloudTranscription`` (2.0) reference
pages of the TRTC API (states as the ``Status`` field documents). Regions: where the sites
disagree, every region either lists is accepted (a region the API does not serve answers
``UnsupportedRegion``, shown per target; refusing a region it does serve has no remedy):

- 1.0: ap-guangzhou, ap-singapore, ap-tokyo, na-siliconvalley (intl site,
  https://www.tencentcloud.com/document/api/647/64968, and the China site's doc 647/64968).
- 2.0: ap-guangzhou, ap-hongkong, ap-singapore (intl site,
  https://www.tencentcloud.com/document/api/647/78746, updated 2026-04-07) plus ap-beijing and
  ap-shanghai, which the China site's DescribeCloudTranscription page lists (operators' report,
  issue 15 item 22; not in the stored intl pages).

A region that neither lists yet goes into ``api.extra_regions`` (accepted for every generation,
with a warning at start), so a new region never needs a release.
"""

from __future__ import annotations

from dataclasses import dataclass

AI_TRANSCRIPTION = "ai_transcription"
CLOUD_TRANSCRIPTION = "cloud_transcription"


@dataclass(frozen=True, slots=True)
class Generation:
    """One API generation: ``api`` is the label value, ``action`` the Describe action name."""

    api: str
    action: str
    regions: tuple[str, ...]
    states: tuple[str, ...]
    session_lookup: bool
    """True when a target may name SdkAppId + SessionId instead of a TaskId."""

    def request_params(self, task_id: str, sdk_app_id: int | None,
                       session_id: str) -> dict[str, object]:
        """The action's JSON body: TaskId lookups, or TaskId "" with SdkAppId + SessionId."""
        if not self.session_lookup:
            return {"SdkAppId": sdk_app_id, "TaskId": task_id}
        if task_id:
            return {"TaskId": task_id}
        return {"TaskId": "", "SdkAppId": sdk_app_id, "SessionId": session_id}


GENERATIONS = {
    AI_TRANSCRIPTION: Generation(
        AI_TRANSCRIPTION, "DescribeAITranscription",
        ("ap-guangzhou", "ap-singapore", "ap-tokyo", "na-siliconvalley"),
        ("Idle", "Preparing", "InProgress", "Stopped"), session_lookup=True),
    CLOUD_TRANSCRIPTION: Generation(
        CLOUD_TRANSCRIPTION, "DescribeCloudTranscription",
        ("ap-beijing", "ap-guangzhou", "ap-hongkong", "ap-shanghai", "ap-singapore"),
        ("Idle", "InProgress", "Exited"), session_lookup=False),
}
ACTIONS = {g.api: g.action for g in GENERATIONS.values()}
"""api label value → Describe action."""
REGIONS = {g.api: g.regions for g in GENERATIONS.values()}
ALL_REGIONS = frozenset(r for regions in REGIONS.values() for r in regions)
STATES = {g.action: g.states for g in GENERATIONS.values()}
"""Describe action → the API's own status values (without Unknown and NotFound)."""
