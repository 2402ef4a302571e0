"""The running exporter: builds the parts from a config and swaps them on reload.

``cli`` only parses flags and calls into here; tests build an :class:`Exporter` directly with a
fake clock and an HTTP fake, the same way the CLI does with the real ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from trtc_exporter.api.budget import Budget
from trtc_exporter.api.client import TrtcClient
from trtc_exporter.api.credentials import CredentialProvider, CredentialsError
from trtc_exporter.api.outcome import Outcome
from trtc_exporter.api.skew import SkewEstimator
from trtc_exporter.api.transport import Transport
from trtc_exporter.checks import check
from trtc_exporter.clock import SYSTEM_CLOCK, Clock, WallSeconds
from trtc_exporter.config.coordination import changed_fields
from trtc_exporter.config.model import Config, account_problem, load_config
from trtc_exporter.errors import ConfigError, counted
from trtc_exporter.exposition.apps import AppCollector
from trtc_exporter.exposition.body import Exposition, Section
from trtc_exporter.exposition.dropped import DroppedCollector
from trtc_exporter.exposition.fragments import TaskFragments
from trtc_exporter.exposition.health import BudgetPollerCollector
from trtc_exporter.exposition.selfhealth import SelfHealthCollector
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.exposition.webhooks import WebhookCollector
from trtc_exporter.metrics import ApiMetrics, DropCounter, StorageErrors
from trtc_exporter.polling.events import TaskEvents
from trtc_exporter.polling.intervals import stall_limit
from trtc_exporter.polling.planning import budget_rates, plan, state_interval, with_account
from trtc_exporter.polling.poller import Poller
from trtc_exporter.polling.state import StateStore, TargetState, all_auth_failures
from trtc_exporter.runtime import Runtime, revision
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target, in_shard
from trtc_exporter.targets.candidates import SetChange
from trtc_exporter.targets.registrations import Registered, RegistrationStoreError
from trtc_exporter.targets.sources import TargetSources
from trtc_exporter.targets.targetset import TargetLimitError
from trtc_exporter.web.protocol import BudgetUse, TargetFacts
from trtc_exporter.webhook.effects import EffectUnavailable
from trtc_exporter.webhook.forward import Forwarder
from trtc_exporter.webhook.forward_store import ForwardStorageError
from trtc_exporter.webhook.hub import WebhookHub
from trtc_exporter.webhook.keys import KeyRing
from trtc_exporter.webhook.silence import SilenceRule

if TYPE_CHECKING:  # imported when coordination is configured: redis-py costs ~9 MB of RSS
    from trtc_exporter.coordination.cluster import Cluster

log = logging.getLogger(__name__)
# _created series double the counter output and no dashboard of ours uses them
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in older releases


class Exporter:
    """The running exporter: owns every part and implements the web layer's protocol
    (:class:`trtc_exporter.web.protocol.ExporterProtocol`)."""

    def __init__(self, config: Config, credentials: CredentialProvider, *,
                 clock: Clock = SYSTEM_CLOCK, config_path: str = "",
                 http: Transport | None = None, shard: tuple[int, int] = (0, 1),
                 demo: bool = False, basic_auth: Callable[[], bool] = lambda: False,
                 accounts: dict[str, CredentialProvider] | None = None,
                 redis_password: Secret | None = None,
                 keyring: KeyRing | None = None) -> None:
        """Build every part from a checked ``config`` (see :func:`trtc_exporter.checks.check`).

        ``basic_auth`` says whether the web config in force has basic-auth users, for the
        reload's registration check; ``shard`` is (index, count) of ``--shard``. ``accounts``
        maps each account of ``accounts:`` to its credentials (``credentials`` alone serves the
        implicit account); ``redis_password`` is ``coordination.password_file``'s content;
        ``keyring`` (the checked callback keys) switches the TRTC callback receiver on (None:
        off).
        """
        self.clock = clock
        self._basic_auth = basic_auth
        self.runtime = Runtime(config, config_path=config_path,
                               credentials_source=credentials.source, shard_index=shard[0],
                               shard_count=shard[1], demo=demo,
                               reload_success_time=clock.time())
        self.registry = CollectorRegistry(auto_describe=True)
        api_registry = CollectorRegistry(auto_describe=True)  # the head of /metrics
        # the account label exists only with accounts: (fixed at start: labels cannot change)
        self.labelled = bool(config.accounts)
        self.drops = DropCounter()  # targets left out of answers, by reason
        self.storage_errors = StorageErrors()  # faults of the stores, by store
        self.cluster = (self._cluster(config, redis_password)
                        if config.coordination.enabled else None)
        self.budget = Budget(budget_rates(config), clock, guard=config.api.rate_guard,
                             confirm_sends=True, factory=None if self.cluster is None else
                             self.cluster.limiter_factory(config.api.rate_guard))
        self.skew = SkewEstimator()
        self.clients = self._build_clients(
            config, accounts or {config.account_names[0]: credentials}, http, api_registry)
        self.client = self.clients[config.account_names[0]]
        # with coordination, registrations and webhook discoveries alike live in Redis
        self.sources = TargetSources(config, clock, self.drops, webhooks=keyring is not None,
                                     shared=None if self.cluster is None
                                     else self.cluster.registrations,
                                     faults=self.storage_errors)
        self.store = StateStore()
        self.poller = Poller(config, self._describe, self.store, self.budget, clock)
        self.revision = revision()
        self._all_targets: list[Target] = []  # the whole (shard's) set; the poller gets ours
        self._task_index: dict[tuple[str, str], tuple[str, ...]] = {}  # of _all_targets (HA)
        self._tail = CollectorRegistry(auto_describe=True)  # what follows the task families
        self.exposition = self._register_collectors(api_registry, clock, keyring is not None)
        self.webhook: WebhookHub | None = None
        self.events: TaskEvents | None = None  # the callback effects' sink (with webhooks)
        self.webhook_address: str | None = None  # the listener's, when chosen here (--demo)
        self.forwarder: Forwarder | None = None
        if keyring is not None:
            self._build_webhooks(config, keyring)
        self._reload_lock = threading.Lock()
        self._targets_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if self.cluster is not None:
            self.poller.set_share(self._plan_share)
        self._apply_targets(config)

    def _cluster(self, config: Config, password: Secret | None) -> Cluster:
        """The Redis coordination of ``config.coordination`` (enabled). Imported here, not at
        the top: without coordination redis-py is never loaded (≈ 9 MB of RSS, issue 16)."""
        from trtc_exporter.coordination.cluster import Cluster
        return Cluster(config.coordination, password, self.clock, drops=self.drops,
                       faults=self.storage_errors)

    def _build_clients(self, config: Config, providers: dict[str, CredentialProvider],
                       http: Transport | None,
                       registry: CollectorRegistry) -> dict[str, TrtcClient]:
        """One client per account (name -> client), all spending the one budget; with
        ``accounts:`` each counts its requests under its own ``account`` label. Their
        instruments go into ``registry``, the head of /metrics."""
        metrics = ApiMetrics(registry, accounts=self.labelled)
        return {
            name: TrtcClient(endpoint=config.api.endpoint, credentials=provider,
                             budget=self.budget,
                             metrics=metrics.for_account(name) if self.labelled else metrics,
                             clock=self.clock, timeout=config.api.timeout,
                             max_retries=config.api.max_retries, skew=self.skew,
                             http=http)
            for name, provider in providers.items()}

    def _build_webhooks(self, config: Config, keyring: KeyRing) -> None:
        """The callback receiver, its effects on targets and state, the relay and metrics
        (registered last: the families without webhooks stay as they were)."""
        events = TaskEvents(self.poller, self._register_discovered, lambda: self.runtime.config,
                            find=self._find_task,
                            relay=None if self.cluster is None else self.cluster.relay.publish)
        self.events = events
        hook = config.webhook
        if hook.forward is not None:
            path = hook.forward.resolved_db_path(config.registration.db_path)
            try:
                self.forwarder = Forwarder(hook.forward, path, self.clock,
                                           faults=self.storage_errors)
            except ForwardStorageError as exc:
                raise ConfigError([f"webhook.forward_db_path: {exc}"]) from None
        if keyring.allow_unsigned:
            log.warning("webhook.allow_unsigned is true: callbacks without a valid Sign are "
                        "accepted from anyone who can reach the webhook listener")
        self.webhook = WebhookHub(keyring, events, self.clock, max_age=hook.max_age,
                                  relay=self.forwarder)
        self._tail.register(WebhookCollector(
            lambda: self.store.snapshot(), self.clock.time, self.webhook.stats,
            events.start_failures, lambda: SilenceRule(self.runtime.config.webhook.silence_after),
            self.forwarder.stats if self.forwarder is not None else None,
            lambda: self.runtime.config.apps))

    def _register_collectors(self, api: CollectorRegistry, clock: Clock,
                             webhooks: bool) -> Exposition:
        """Fill ``registry`` and build what /metrics serves (the same bytes, faster).

        Registration order is exposition order: API instruments, task families, app totals,
        budget and poller, the exporter itself, drops, process and platform, webhooks (the
        golden test pins it). ``registry`` renders all of it through client_python alone;
        :class:`Exposition` pre-renders the task section and encodes the rest as before.
        """
        def snapshot() -> list[TargetState]:
            # looked up late: tests swap the store's method; with coordination, the states
            # other replicas published for their targets too (every replica serves them all)
            return self.states()

        for collector in (AppCollector(self.store, lambda: self.runtime.config, clock.time,
                                       accounts=self.labelled, states=self.states),
                          BudgetPollerCollector(self.budget, self.poller, self.skew,
                                                lambda: self.runtime.config, self.sources,
                                                webhooks=webhooks, accounts=self.labelled),
                          SelfHealthCollector(self.runtime, self.revision),
                          DroppedCollector(self.drops, self.storage_errors)):
            self._tail.register(collector)
        # process_* (CPU, memory, fds, start time) and python_info, as every client_python
        # exporter serves them on its default registry; ours is a registry of its own
        ProcessCollector(registry=self._tail)
        PlatformCollector(registry=self._tail)
        if self.cluster is not None:
            from trtc_exporter.exposition.coordination import CoordinationCollector
            self._tail.register(CoordinationCollector(self.cluster.coordinator))
        for part in (api, TaskCollector(snapshot, clock.time, drops=self.drops),
                     Section(self._tail)):
            self.registry.register(part)
        return Exposition(api, TaskFragments(snapshot, clock.time, self.drops), self._tail,
                          self.registry)

    def _register_discovered(self, target: Target, ttl: float) -> bool:
        """Watch a task a callback told us about: False when refused (max_targets); raises
        EffectUnavailable when the registration store (SQLite, or Redis with coordination)
        cannot take it now, so the callback is answered 503 and TRTC's retry registers it."""
        try:
            self.register([target], ttl)
        except TargetLimitError as exc:
            log.error("cannot watch %s found by a callback: %s", target.describe(), exc)
            return False
        except RegistrationStoreError as exc:
            raise EffectUnavailable(str(exc)) from None
        return True

    def _find_task(self, api: str, task_id: str) -> tuple[str, ...] | None:
        """A task in the whole target set: polled here, else (coordination) by its owner, so
        callbacks of another replica's task neither re-register it nor get lost as new."""
        key = self.poller.find_task(api, task_id)
        if key is not None or self.cluster is None:
            return key
        return self._task_index.get((api, task_id))

    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self.runtime.config

    def _describe(self, target: Target, cancel: threading.Event) -> Outcome:
        """Poll one target with its account's client (credentials and budget lane)."""
        return self.clients[target.account or self.config.account_names[0]].describe(
            target, cancel)

    def _apply_targets(self, config: Config | None = None, announce: bool = True) -> None:
        """Push the merged, shard-filtered target set to the poller (and log the plan); with
        coordination, only the targets this replica owns among the live members."""
        with self._targets_lock:
            config = config or self.config  # read under the lock: a reload may be swapping it
            merged = self._mine(self.sources.merged(), config)
            targets = self._owned(merged)
            if announce:
                for line in plan(config, targets, budget_rates(config)):
                    if line.targets:
                        log.info("capacity plan: %s", line.summary())
            self._prepare(targets, config)
            self._all_targets = merged
            # read only with coordination (tasks polled by another replica): 80 B a target
            self._task_index = {} if self.cluster is None else {
                (t.api, t.task_id): t.key for t in merged if t.task_id}
            self.poller.set_targets(targets, config)

    def _plan_share(self) -> float:
        """The part of the shared budget our targets may plan with: owned / all while Redis
        answers; 1 on the fallback, whose limiter already holds only our 1/N share."""
        cluster, total = self.cluster, len(self._all_targets)
        if cluster is None or not cluster.link.up or not total:
            return 1.0
        return len(self.poller.targets()) / total

    @staticmethod
    def _usable(targets: list[Target], config: Config) -> list[Target]:
        """Drop (and log) file or registered targets naming an account not configured."""
        good = [t for t in targets if account_problem(t.account, config.accounts) is None]
        if len(good) < len(targets):
            log.error("not polling %s: their account is not in accounts:",
                      counted(len(targets) - len(good), "target"))
        return good

    def _owned(self, targets: list[Target]) -> list[Target]:
        """Ours among the live members; a target newly ours starts from its shared state."""
        if self.cluster is None:
            return targets
        mine = self.cluster.owned(t.id for t in targets)
        owned = [t for t in targets if t.id in mine]
        for target in owned:
            shared = self.cluster.shared_state(target.id)
            if shared is not None and self.store.get(target.key) is None:
                self.store.put(shared.onto(TargetState(target)))
        return owned

    def register(self, targets: list[Target], ttl: float | None) -> list[Target]:
        """Registration API: add targets (TargetLimitError past max_targets).

        Incremental: the new targets join the poller without a re-merge or re-plan of the
        whole set, so a registration costs O(batch), not O(targets).
        """
        new = self.sources.register(targets, ttl or self.config.registration.default_ttl)
        if new and self.cluster is not None:
            # who polls a registration is the cluster's choice (ownership over live members):
            # the whole set goes through the ownership filter again
            self._apply_targets(announce=False)
        elif new:
            with self._targets_lock:
                config = self.config
                mine = self._mine(new, config)
                self._prepare(mine, config)
                self.poller.add_targets(mine)
        return new

    def _mine(self, targets: Iterable[Target], config: Config) -> list[Target]:
        """The targets of our ``--shard``, accounts resolved, usable (see :meth:`_usable`)."""
        rt = self.runtime
        return self._usable([with_account(config, t) for t in targets
                             if in_shard(t, rt.shard_index, rt.shard_count)], config)

    def _prepare(self, targets: Iterable[Target], config: Config) -> None:
        """Give each (account, action, region) polled its request series before any poll."""
        for account, action, region in sorted({(t.account, t.action, t.region)
                                               for t in targets}):
            self.clients[account or config.account_names[0]].metrics.prepare(action, region)

    def unregister(self, target_id: str) -> bool:
        """Registration API: remove a registration by Target.id; False when there is none.

        Incremental like :meth:`register`, unless targets wait beyond max_targets: then the
        whole set is merged again so that one of them takes the freed place.
        """
        left = self.sources.withdraw(target_id)
        if left is None:
            return False
        if self.sources.has_refusals or self.cluster is not None:
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
        change = self.sources.maintain()
        if change.whole or (change and self.cluster is not None):
            # with coordination, who polls what is the cluster's choice over the whole set
            self._apply_targets()
        elif change:
            self._apply_change(change)
        return bool(change)

    def _apply_change(self, change: SetChange) -> None:
        """Apply a piecewise change of the merged set (a target-file edit) to the poller
        through its incremental API, in time proportional to the change (no plan is logged,
        as for a registration). A changed target whose account is no longer usable leaves."""
        with self._targets_lock:
            config = self.config
            added, changed = self._mine(change.added, config), self._mine(change.changed, config)
            kept = {t.key for t in changed}
            gone = [t.key for t in change.removed] + [t.key for t in change.changed
                                                       if t.key not in kept]
            self._prepare(added + changed, config)
            self.poller.remove_targets(gone)
            self.poller.change_targets(changed)
            self.poller.add_targets(added + changed)  # a changed one that was not usable

    def sync_once(self) -> None:
        """With coordination: publish the states we polled, read every replica's."""
        if self.cluster is not None:
            self.cluster.sync_states(self.store.snapshot(),
                                     {t.id for t in self._all_targets})

    def _maintain_loop(self) -> None:
        while not self.clock.wait(self._stop, 1.0):
            try:
                self.maintain_once()
                self.sync_once()
            except Exception:  # a bad file or database must not kill the watcher
                log.exception("target maintenance failed")

    def start(self) -> None:
        """Start the poller, the target-maintenance thread and the coordination heartbeat."""
        self.poller.mark_started()
        self.poller.start()
        self._spawn(self._maintain_loop, "targets")
        if self.cluster is not None:
            cluster = self.cluster
            self._spawn(lambda: cluster.run(self._stop, self._members_changed), "coordination")
            if self.events is not None:
                events = self.events
                self._spawn(lambda: cluster.relay.run(self._stop, events.apply_relayed),
                            "relay")
        if self.forwarder is not None:
            self.forwarder.start()

    def _spawn(self, run: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _members_changed(self, members: list[str]) -> None:
        self._apply_targets(announce=False)
        log.info("coordination: %s; polling %d of %s", counted(len(members), "member"),
                 len(self.poller.targets()), counted(len(self._all_targets), "target"))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling (up to ``timeout`` s for requests in flight); leave the cluster; close
        the stores."""
        self._stop.set()
        self.poller.stop(timeout)
        for thread in self._threads:
            thread.join(1.0)
        if self.forwarder is not None:
            self.forwarder.stop(timeout)
        self.sources.close()
        if self.cluster is not None:
            self.cluster.stop()

    def reload(self) -> tuple[bool, str]:
        """Re-read the config file and apply every start-up check (:mod:`trtc_exporter.checks`);
        apply it whole or keep the running one (last-known-good). Returns (applied, message)."""
        with self._reload_lock:
            try:
                config = load_config(self.runtime.config_path)
                checked = check(config, basic_auth=self._basic_auth())
                self._restart_needed(config)
                credentials = checked.credentials
                self.sources.apply_config(config)
            except (ConfigError, CredentialsError) as exc:
                self.runtime.reload_successful = False
                self.runtime.reload_error = str(exc)
                log.error("reload failed, keeping the running configuration: %s",
                          str(exc).replace("\n", "; "))
                return False, str(exc)
            for name, provider in checked.accounts.items():
                self.clients[name].set_credentials(provider)
            if self.webhook is not None:
                self.webhook.set_keys(checked.keyring, config.webhook.max_age)
                if config.webhook.forward != self.config.webhook.forward:
                    log.warning("webhook.forward_* changed; the relay's new settings take "
                                "effect on restart")
            self.budget.update(budget_rates(config))
            self.runtime.config = config
            self._apply_targets(config)
            self.runtime.credentials_source = credentials.source
            self.runtime.reload_successful = True
            self.runtime.reload_error = ""
            self.runtime.reload_success_time = self.clock.time()
            log.info("configuration reloaded: %s", counted(len(self.poller.targets()), "target"))
            return True, "configuration reloaded"

    def _restart_needed(self, config: Config) -> None:
        """ConfigError for changes a reload cannot apply: the account list (its names are
        metric labels and clients) and the coordination block (membership, limiters)."""
        old = self.config
        problems = []
        if set(config.account_names) != set(self.clients):
            problems.append("accounts: adding, removing or renaming accounts needs a restart")
        problems += [f"{path}: changes need a restart"
                     for path in changed_fields(old.coordination, config.coordination)]
        if problems:
            raise ConfigError(problems)

    # -- health -----------------------------------------------------------------------------
    def healthy(self) -> bool:
        """False when the poller is stalled: its most overdue poll is later than
        :func:`~trtc_exporter.polling.intervals.stall_limit` allows (judged against the work
        really due, so targets polled rarely on purpose never make it flap)."""
        longest = max((self.poller.effective_interval(a) for a in self.poller.stretch),
                      default=self.config.poll_interval)
        api = self.config.api
        return self.poller.overdue_seconds() <= stall_limit(longest, api.timeout,
                                                             api.max_retries)

    def ready(self) -> bool:
        """True once the first poll cycle is done and not every target is failing with an
        authentication or authorisation error (see :meth:`not_ready_reason`)."""
        return not self.not_ready_reason()

    def not_ready_reason(self) -> str:
        """Why /-/ready answers 503, or "" when ready: the first cycle is not done yet, or
        the latest poll of every target failed with AuthFailure* or UnauthorizedOperation*
        (bad keys: a rollout should stop rather than replace working replicas)."""
        if not self.poller.stats.ready:
            return "first poll cycle not done yet"
        code = all_auth_failures(self.store.snapshot())
        if code:
            return f"every target's last poll failed with {code}: check the credentials"
        return ""

    # -- the read side of the web protocol ---------------------------------------------------
    def states(self) -> list[TargetState]:
        """Every target's current state (plain, immutable records): the poller's snapshot, and
        with coordination the last state other replicas published for the targets they own."""
        own = self.store.snapshot()
        if self.cluster is None:
            return own
        return own + self._others({s.target.key for s in own}, self._all_targets)

    def _others(self, have: set[tuple[str, ...]], targets: Iterable[Target]) -> list[TargetState]:
        assert self.cluster is not None
        config, out = self.config, []
        for target in targets:
            if target.key in have:
                continue
            state = TargetState(target)
            shared = self.cluster.shared_state(target.id)
            if shared is not None:  # the interval lets a silent owner's record go stale
                interval = state_interval(target, shared.status, shared.seen,
                                          shared.not_found_streak, config, shared.event_age)
                stretch = self.poller.stretch.get(target.lane, 1.0)  # every replica's alike
                state = replace(shared.onto(state), interval=interval * stretch)
            out.append(state)
        return out

    def now(self) -> WallSeconds:
        """Wall-clock seconds (the injected clock)."""
        return self.clock.time()

    def target_facts(self) -> list[TargetFacts]:
        """Per target: its state, seconds until its next poll and its registration expiry."""
        mono = self.clock.monotonic()
        facts = []
        for state in self.states():
            due = self.poller.due_time(state.target.key)
            # only a target served from a registration expires: when the config (or a file)
            # has the same target, a registration of it never shows a TTL on it
            expires = (self.sources.expiry_of(state.target.key)
                       if state.target.source == "api" else None)
            facts.append(TargetFacts(state, None if due is None else max(0.0, due - mono),
                                     expires))
        return facts

    def budget_plan(self) -> list[tuple[str, float, float]]:
        """(action, effective rate in req/s, effective interval in s) for every limiter."""
        return [(action, limiter.effective_rate, self.poller.effective_interval(action))
                for action, limiter in self.budget.items()]

    def budget_use(self) -> list[BudgetUse]:
        """Per action: the capacity plan of the polled targets against the limiter's rates."""
        config, limiters = self.config, dict(self.budget.items())
        return [BudgetUse(p.action, p.targets, p.demand, p.budget,
                          limiters[p.action].effective_rate if p.action in limiters else p.budget,
                          self.poller.effective_interval(p.action))
                for p in plan(config, self.poller.targets(), budget_rates(config))]

    def registration_expiry(self, key: tuple[str, ...]) -> float | None:
        """Wall-clock expiry of an identity's registration (None: permanent or not registered)."""
        return self.sources.expiry_of(key)

    def registered(self, key: tuple[str, ...]) -> Registered | None:
        """The registration of an identity, whichever shard polls it."""
        return self.sources.registered(key)
