"""The silence rule: InProgress longer than silence_after with no sentence in that time."""

from __future__ import annotations

import pytest

from trtc_exporter.webhook.silence import SilenceRule

RULE = SilenceRule(300.0)


@pytest.mark.parametrize(("since", "last", "now", "silent"), [
    (None, None, 10_000.0, False),  # not InProgress
    (1000.0, None, 1300.0, False),  # exactly silence_after: not yet
    (1000.0, None, 1300.5, True),  # longer, never a sentence
    (1000.0, 1100.0, 1350.0, False),  # a sentence within the last 5 minutes
    (1000.0, 1100.0, 1400.5, True),  # the last sentence is older than 5 minutes
    (1000.0, 900.0, 1300.5, True),  # a sentence before it was InProgress does not help
])
def test_silence(since: float | None, last: float | None, now: float, silent: bool) -> None:
    """A task is silent only after silence_after InProgress and silence_after without sentence."""
    assert RULE.is_silent(since, last, now) is silent


def test_silent_at_is_when_the_rule_starts_to_hold() -> None:
    """silent_at gives the boundary after which is_silent turns true."""
    at = RULE.silent_at(1000.0, 1100.0)
    assert at == 1400.0
    assert not RULE.is_silent(1000.0, 1100.0, at)
    assert RULE.is_silent(1000.0, 1100.0, at + 0.001)
