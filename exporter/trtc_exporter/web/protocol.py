"""The narrow protocol the web layer depends on: what it reads and the few commands it sends.

:class:`trtc_exporter.app.Exporter` implements it; tests may pass anything else that does. The
web layer never reaches through it to the poller, the budget or the API client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry

from trtc_exporter.clock import WallSeconds
from trtc_exporter.config.model import Config
from trtc_exporter.exposition.body import Exposition
from trtc_exporter.polling.state import TargetState
from trtc_exporter.runtime import Runtime
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import Registered


@dataclass(frozen=True, slots=True)
class TargetFacts:
    """One polled target as the pages show it.

    ``next_poll_in`` is seconds until the next poll (None when not scheduled); ``expires_at``
    the wall-clock seconds when its registration expires (None: permanent or not registered).
    """

    state: TargetState
    next_poll_in: float | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class BudgetUse:
    """One action's budget as the landing page draws it; rates in requests/s.

    ``limit`` is the configured rate, ``effective`` the limiter's current (adaptive) rate,
    ``demand`` what the polled targets need at their base cadence (the capacity plan's demand),
    ``interval`` the effective poll interval in seconds after stretching.
    """

    action: str
    targets: int
    demand: float
    limit: float
    effective: float
    interval: float


class ExporterProtocol(Protocol):
    """Reads and commands of the web layer. Times are wall-clock seconds unless named."""

    @property
    def config(self) -> Config:
        """The running configuration (swapped whole on reload)."""
        ...

    @property
    def runtime(self) -> Runtime:
        """Reload outcome, credential source, shard, demo flag, config path."""
        ...

    @property
    def revision(self) -> str:
        """The build's git revision ('unknown' outside a checkout)."""
        ...

    @property
    def registry(self) -> CollectorRegistry:
        """Everything /metrics shows, through client_python alone (the reference rendering)."""
        ...

    @property
    def exposition(self) -> Exposition:
        """What /metrics serves: the same bytes as ``registry``, task families pre-rendered."""
        ...

    def healthy(self) -> bool:
        """False when the poller has stalled (the /-/healthy answer)."""
        ...

    def ready(self) -> bool:
        """True when :meth:`not_ready_reason` is empty (the /-/ready answer)."""
        ...

    def not_ready_reason(self) -> str:
        """Why the exporter is not ready ("" when it is): first cycle pending, or every
        target's last poll failed with an authentication error."""
        ...

    def now(self) -> WallSeconds:
        """Wall-clock seconds of the exporter's clock."""
        ...

    def states(self) -> list[TargetState]:
        """The snapshot of every polled target's state."""
        ...

    def target_facts(self) -> list[TargetFacts]:
        """The snapshot with next-poll and expiry facts, for the landing page and JSON API."""
        ...

    def budget_plan(self) -> list[tuple[str, float, float]]:
        """(action, effective rate req/s, effective interval s) for every limiter."""
        ...

    def budget_use(self) -> list[BudgetUse]:
        """Per action: targets, demand, configured and effective rate (the landing page's bars)."""
        ...

    def bearer_token(self) -> Secret | None:
        """The registration API's bearer token, if configured."""
        ...

    def registration_expiry(self, key: tuple[str, ...]) -> float | None:
        """When an identity's registration expires (None: permanent or not registered)."""
        ...

    def registered(self, key: tuple[str, ...]) -> Registered | None:
        """An identity's registration, whichever shard polls it."""
        ...

    def register(self, targets: list[Target], ttl: float | None) -> list[Target]:
        """Add registrations (``ttl`` s; None: the configured default); returns the new ones."""
        ...

    def unregister(self, target_id: str) -> bool:
        """Remove a registration by ``Target.id``; False when there is none."""
        ...

    def reload(self) -> tuple[bool, str]:
        """Re-read and check the config; (applied, message). Keeps the running one on error."""
        ...

    def start(self) -> None:
        """Start polling and target maintenance."""
        ...

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling, waiting up to ``timeout`` seconds for requests in flight."""
        ...
