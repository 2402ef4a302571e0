"""The running exporter: builds the parts from a config and swaps them on reload.

``cli`` only parses flags and calls into here; tests build an :class:`Exporter` directly with a
fake clock and an HTTP fake, the same way the CLI does with the real ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import requests
from prometheus_client import CollectorRegistry, disable_created_metrics

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.client import TrtcClient
from trtc_exporter.api.credentials import CredentialProvider, CredentialsError
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.checks import check
from trtc_exporter.clock import SYSTEM_CLOCK, Clock, WallSeconds
from trtc_exporter.config.model import Config, load_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.exposition.apps import AppCollector
from trtc_exporter.exposition.body import Exposition
from trtc_exporter.exposition.fragments import TaskFragments
from trtc_exporter.exposition.health import BudgetPollerCollector
from trtc_exporter.exposition.selfhealth import SelfHealthCollector
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.metrics import ApiMetrics
from trtc_exporter.polling.intervals import STALE_AFTER_INTERVALS
from trtc_exporter.polling.planning import budget_rates, plan
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore, TargetState
from trtc_exporter.runtime import Runtime, revision
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target, in_shard
from trtc_exporter.targets.registrations import Registered
from trtc_exporter.targets.sources import TargetSources
from trtc_exporter.web.protocol import TargetFacts

log = logging.getLogger(__name__)
# _created series double the counter output and no dashboard of ours uses them
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in older releases


class Exporter:
    """The running exporter: owns every part and implements the web layer's protocol
    (:class:`trtc_exporter.web.protocol.ExporterProtocol`)."""

    def __init__(self, config: Config, credentials: CredentialProvider, *,
                 clock: Clock = SYSTEM_CLOCK, config_path: str = "",
                 session: requests.Session | None = None, shard: tuple[int, int] = (0, 1),
                 demo: bool = False, basic_auth: Callable[[], bool] = lambda: False) -> None:
        """Build every part from a checked ``config`` (see :func:`trtc_exporter.checks.check`).

        ``basic_auth`` says whether the web config in force has basic-auth users, for the
        reload's registration check; ``shard`` is (index, count) of ``--shard``.
        """
        self.clock = clock
        self._basic_auth = basic_auth
        self.runtime = Runtime(config, config_path=config_path,
                               credentials_source=credentials.source, shard_index=shard[0],
                               shard_count=shard[1], demo=demo,
                               reload_success_time=clock.time())
        self.registry = CollectorRegistry(auto_describe=True)
        api_registry = CollectorRegistry(auto_describe=True)  # the head of /metrics
        self.budget = Budget(budget_rates(config), clock, guard=config.api.rate_guard)
        self.skew = SkewEstimator()
        self.client = TrtcClient(endpoint=config.api.endpoint, credentials=credentials,
                                 budget=self.budget, metrics=ApiMetrics(api_registry),
                                 clock=clock, timeout=config.api.timeout,
                                 max_retries=config.api.max_retries, skew=self.skew,
                                 session=session)
        self.sources = TargetSources(config, clock)
        self.store = StateStore()
        self.poller = Poller(config, self.client.describe, self.store, self.budget, clock)
        self.revision = revision()
        self.exposition = self._register_collectors(api_registry, clock)
        self._reload_lock = threading.Lock()
        self._targets_lock = threading.Lock()
        self._stop = threading.Event()
        self._apply_targets(config)

    def _register_collectors(self, api: CollectorRegistry, clock: Clock) -> Exposition:
        """Fill ``registry`` and build what /metrics serves (the same bytes, faster).

        Registration order is exposition order: API instruments, task families, app totals,
        budget and poller, the exporter itself (the golden test pins it). ``registry`` renders
        all of it through client_python alone; :class:`Exposition` pre-renders the task section.
        """
        def snapshot() -> list[TargetState]:
            return self.store.snapshot()  # looked up late: tests swap the store's method

        tail = CollectorRegistry(auto_describe=True)
        for collector in (AppCollector(self.store, lambda: self.runtime.config, clock.time),
                          BudgetPollerCollector(self.budget, self.poller, self.skew,
                                                lambda: self.runtime.config, self.sources),
                          SelfHealthCollector(self.runtime, self.revision)):
            tail.register(collector)
        for part in (api, TaskCollector(snapshot, clock.time), tail):
            self.registry.register(part)
        return Exposition(api, TaskFragments(snapshot, clock.time), tail, self.registry)

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self.runtime.config

    def _apply_targets(self, config: Config | None = None, announce: bool = True) -> None:
        """Push the merged, shard-filtered target set to the poller (and log the plan)."""
        rt = self.runtime
        with self._targets_lock:
            config = config or self.config  # read under the lock: a reload may be swapping it
            targets = [t for t in self.sources.merged()
                       if in_shard(t, rt.shard_index, rt.shard_count)]
            if announce:
                for line in plan(config, targets, budget_rates(config)):
                    if line.targets:
                        log.info("capacity plan: %s", line.summary())
            for action, region in sorted({(t.action, t.region) for t in targets}):
                self.client.metrics.prepare(action, region)
            self.poller.set_targets(targets, config)

    def register(self, targets: list[Target], ttl: float | None) -> list[Target]:
        """Registration API: add targets (TargetLimitError past max_targets).

        Incremental: the new targets join the poller without a re-merge or re-plan of the
        whole set, so a registration costs O(batch), not O(targets).
        """
        new = self.sources.register(targets, ttl or self.config.registration.default_ttl)
        if new:
            rt = self.runtime
            with self._targets_lock:
                mine = [t for t in new if in_shard(t, rt.shard_index, rt.shard_count)]
                for action, region in sorted({(t.action, t.region) for t in mine}):
                    self.client.metrics.prepare(action, region)
                self.poller.add_targets(mine)
        return new

    def unregister(self, target_id: str) -> bool:
        """Registration API: remove a registration by Target.id; False when there is none.

        Incremental like :meth:`register`, unless targets wait beyond max_targets: then the
        whole set is merged again so that one of them takes the freed place.
        """
        left = self.sources.withdraw(target_id)
        if left is None:
            return False
        if self.sources.has_refusals:
            self._apply_targets(announce=False)
        elif left:
            with self._targets_lock:
                self.poller.remove_targets([t.key for t in left])
        return True

    def bearer_token(self) -> Secret | None:
        """The registration API bearer token (None when not configured)."""
        return self.sources.bearer_token

    def maintain_once(self) -> bool:
        """Re-read due target files and expire registrations; apply the set if it changed."""
        changed = self.sources.maintain()
        if changed:
            self._apply_targets()
        return changed

    def _maintain_loop(self) -> None:
        while not self.clock.wait(self._stop, 1.0):
            try:
                self.maintain_once()
            except Exception:  # a bad file or database must not kill the watcher
                log.exception("target maintenance failed")

    def start(self) -> None:
        """Start the poller and the target-maintenance thread."""
        self.poller.mark_started()
        self.poller.start()
        threading.Thread(target=self._maintain_loop, name="targets", daemon=True).start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (up to ``timeout`` s for requests in flight); close the stores."""
        self._stop.set()
        self.poller.stop(timeout)
        self.sources.close()

    def reload(self) -> tuple[bool, str]:
        """Re-read the config file and apply every start-up check (:mod:`trtc_exporter.checks`);
        apply it whole or keep the running one (last-known-good). Returns (applied, message)."""
        with self._reload_lock:
            try:
                config = load_config(self.runtime.config_path)
                credentials = check(config, basic_auth=self._basic_auth()).credentials
                self.sources.apply_config(config)
            except (ConfigError, CredentialsError) as exc:
                self.runtime.reload_successful = False
                self.runtime.reload_error = str(exc)
                log.error("reload failed, keeping the running configuration: %s",
                          str(exc).replace("\n", "; "))
                return False, str(exc)
            self.client.set_credentials(credentials)
            self.budget.update(budget_rates(config))
            self.runtime.config = config
            self._apply_targets(config)
            self.runtime.credentials_source = credentials.source
            self.runtime.reload_successful = True
            self.runtime.reload_error = ""
            self.runtime.reload_success_time = self.clock.time()
            log.info("configuration reloaded: %d targets", len(self.poller.targets()))
            return True, "configuration reloaded"

    # -- health -----------------------------------------------------------------------------
    def healthy(self) -> bool:
        """False when the poller has made no progress for STALE_AFTER_INTERVALS of the longest
        effective interval (plus a 5 s grace)."""
        longest = max((self.poller.effective_interval(a) for a in self.poller.stretch),
                      default=self.config.poll_interval)
        limit = STALE_AFTER_INTERVALS * longest + 5
        return self.clock.time() - self.poller.stats.last_progress <= limit

    def ready(self) -> bool:
        """True once the first poll cycle is done."""
        return self.poller.stats.ready

    # -- the read side of the web protocol ---------------------------------------------------
    def states(self) -> list[TargetState]:
        """The poller's current snapshot of every polled target (plain, immutable records)."""
        return self.store.snapshot()

    def now(self) -> WallSeconds:
        """Wall-clock seconds (the injected clock)."""
        return self.clock.time()

    def target_facts(self) -> list[TargetFacts]:
        """Per target: its state, seconds until its next poll and its registration expiry."""
        mono = self.clock.monotonic()
        facts = []
        for state in self.store.snapshot():
            due = self.poller.due_time(state.target.key)
            facts.append(TargetFacts(state, None if due is None else max(0.0, due - mono),
                                     self.sources.expiry_of(state.target.key)))
        return facts

    def budget_plan(self) -> list[tuple[str, float, float]]:
        """(action, effective rate in req/s, effective interval in s) for every limiter."""
        return [(action, limiter.effective_rate, self.poller.effective_interval(action))
                for action, limiter in self.budget.items()]

    def registration_expiry(self, key: tuple[str, ...]) -> float | None:
        """Wall-clock expiry of an identity's registration (None: permanent or not registered)."""
        return self.sources.expiry_of(key)

    def registered(self, key: tuple[str, ...]) -> Registered | None:
        """The registration of an identity, whichever shard polls it."""
        return self.sources.registered(key)
