"""Capacity planning: what request rate a target set needs, and how far intervals must stretch.

needed rate = Σ 1 / interval over the targets of one action. When it exceeds what the budget can
deliver, every interval of that action is multiplied by the same stretch factor, so all targets
slow down together and none starves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from trtc_exporter.config.model import Config
from trtc_exporter.durations import format_duration
from trtc_exporter.errors import counted
from trtc_exporter.generations import ACTIONS
from trtc_exporter.polling.intervals import effective_interval
from trtc_exporter.polling.state import ENDED_STATES
from trtc_exporter.response import NOT_FOUND
from trtc_exporter.target import Target


def budget_rates(config: Config) -> dict[str, float]:
    """The configured rate (req/s) of every lane: by action name for the implicit account,
    by ``account/action`` for each entry of ``accounts:`` (see ``Target.lane``)."""
    if not config.accounts:
        return {action: config.api.rate_for(action) for action in ACTIONS.values()}
    return {f"{account.name}/{action}": config.rate_for(account.name, action)
            for account in config.accounts for action in ACTIONS.values()}


def with_account(config: Config, target: Target) -> Target:
    """The target with its account resolved (``Config.account_of``) when ``accounts:`` is set,
    so ``target.lane`` names its budget; unchanged without ``accounts:``."""
    if not config.accounts:
        return target
    account = config.account_of(target)
    return target if target.account == account else replace(target, account=account)


def split_lane(lane: str) -> tuple[str, str]:
    """(account, action) of a lane; account "" for the implicit one."""
    account, _, action = lane.rpartition("/")
    return account, action


def base_interval(target: Target, config: Config) -> float:
    """A target's own ``poll_interval``, else the config's (seconds)."""
    return target.poll_interval or config.poll_interval


EVENT_CONFIRMED_FACTOR = 4.0
"""How much less often an InProgress task is polled while TRTC's callbacks keep confirming it
(a start or a sentence received within that longer interval): its stop arrives as a callback
and triggers a poll at once, so the polls are only a safety net (bench/webhooks.py)."""


def state_interval(target: Target, status: str, seen: bool, not_found_streak: int,
                   config: Config, event_age: float | None = None) -> float:
    """Interval before stretching: settled states less often, never-seen NotFound backs off,
    an InProgress task confirmed by a callback ``event_age`` seconds ago less often too.

    An ended session (SdkAppId + SessionId, no TaskId) uses ``stopped_session_factor`` rather
    than the state's factor: its room may start a new transcription at any time.
    """
    base = base_interval(target, config)
    if status == NOT_FOUND and not seen:
        backoff = base * float(2 ** min(max(not_found_streak - 1, 0), 20))
        return max(base, min(backoff, config.schedule.not_found_backoff_max))
    if status in ENDED_STATES and not target.task_id:
        return base * config.schedule.stopped_session_factor
    interval = base * config.schedule.state_factors.get(status, 1.0)
    relaxed = interval * EVENT_CONFIRMED_FACTOR
    if status == "InProgress" and event_age is not None and 0 <= event_age < relaxed:
        return relaxed
    return interval


def capacity(rate: float, guard: float) -> float:
    """Requests/s the limiter sustains at this rate (the guard widens each window a little)."""
    per_window = max(1, math.floor(rate))
    return per_window / (per_window / rate + guard)


def stretch_factor(demand: float, available: float) -> float:
    """How far intervals must stretch so ``demand`` fits ``available`` (both req/s); >= 1."""
    return 1.0 if demand <= available or available <= 0 else demand / available


@dataclass(frozen=True, slots=True)
class ActionPlan:
    """The capacity plan of one action: targets, demand and budget in requests/s, the stretch
    factor (>= 1) and the base interval in seconds."""

    action: str
    targets: int
    demand: float
    budget: float
    stretch: float
    base_interval: float

    @property
    def effective_interval(self) -> float:
        """Seconds between polls at the base cadence once stretched."""
        return effective_interval(self.base_interval, self.stretch)

    def summary(self) -> str:
        """One line for logs and --config.check, with the arithmetic spelled out."""
        text = (f"{self.action}: {counted(self.targets, 'target')} at "
                f"{format_duration(self.base_interval)} "
                f"need {self.demand:.1f} req/s; budget {self.budget:.1f} req/s")
        if self.stretch > 1:
            text += f"; effective interval {format_duration(self.effective_interval)}"
        return text


def plan(config: Config, targets: Iterable[Target], budgets: dict[str, float]) -> list[ActionPlan]:
    """Plan every action from the configured intervals (all targets at their base cadence)."""
    demand: dict[str, float] = {}
    counts: dict[str, int] = {}
    for target in targets:
        lane = with_account(config, target).lane
        demand[lane] = demand.get(lane, 0.0) + 1 / base_interval(target, config)
        counts[lane] = counts.get(lane, 0) + 1
    plans = []
    for action in sorted(set(budgets) | set(demand)):
        budget = budgets.get(action, config.rate_for(*split_lane(action)))
        available = capacity(budget, config.api.rate_guard)
        plans.append(ActionPlan(action, counts.get(action, 0), demand.get(action, 0.0), budget,
                                stretch_factor(demand.get(action, 0.0), available),
                                config.poll_interval))
    return plans
