"""The silence rule: a task transcribing nothing while it claims to be running.

A task InProgress for longer than ``silence_after`` (``webhook.silence_after``, default 5 min) with
no complete sentence (903/1403) in the last ``silence_after`` is silent: audio missing, the wrong
user subscribed, the wrong language (issue "TRTC event webhooks", point 3).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SILENCE_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class SilenceRule:
    """When a running task counts as silent (``webhook.silence_after`` seconds without a
    sentence)."""
    silence_after: float = DEFAULT_SILENCE_AFTER

    def is_silent(self, in_progress_since: float | None, last_sentence: float | None,
                  now: float) -> bool:
        """True when the task is silent at ``now``.

        ``in_progress_since``: Unix seconds since the task is known InProgress (None: it is
        not InProgress); ``last_sentence``: Unix seconds of its last sentence (None: none yet).
        """
        if in_progress_since is None or now - in_progress_since <= self.silence_after:
            return False
        return last_sentence is None or now - last_sentence > self.silence_after

    def silent_at(self, in_progress_since: float, last_sentence: float | None) -> float:
        """The time after which the task is silent if nothing else happens (for schedules)."""
        start = in_progress_since if last_sentence is None else max(in_progress_since,
                                                                     last_sentence)
        return start + self.silence_after
