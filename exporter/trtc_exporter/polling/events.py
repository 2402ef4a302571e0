"""The exporter's :class:`~trtc_exporter.webhook.effects.EffectSink`: TRTC callbacks applied to
the targets and the poller's state.

- a start (901/1401, Status 0) registers the task as a dynamic target (source ``webhook``; its
  region from ``apps.<id>.region`` or ``api.region``, since callbacks carry none; the
  registrations' TTL) and makes it due now, so a poll confirms it within the budget;
- a failed start (Status 1) is counted per (api, sdk_app_id);
- a stop (902/1402) shows the task Stopped (1.0) or Exited (2.0) at once, with the event's time
  as its change time, and makes it due now for a confirming poll;
- a sentence (903/1403) counts one sentence and sets the last-sentence time; a sentence of a
  task we do not watch yet discovers it like a start (its start callback may have been lost).

A task already watched under another identity (e.g. a config target naming only its task id) is
found by (api, task id) and not registered twice. With coordination, a task another replica
polls gets its stop, sentence or confirming poll through ``relay`` (``coordination.relay``):
the owner applies it in :meth:`TaskEvents.apply_relayed`. Nothing here blocks for long or
raises: it runs before TRTC gets its 200.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from trtc_exporter.config.model import Config
from trtc_exporter.generations import AI_TRANSCRIPTION
from trtc_exporter.polling.due import Key
from trtc_exporter.polling.poller import Poller
from trtc_exporter.target import Target
from trtc_exporter.webhook.effects import (
    Effect,
    EffectUnavailable,
    Sentence,
    StartFailed,
    TaskStarted,
    TaskStopped,
)

log = logging.getLogger(__name__)
SOURCE = "webhook"
DEFAULT_TTL = 86_400.0
"""Seconds a webhook-discovered task stays registered when ``registration.default_ttl`` is unset
(each start refreshes it; an ended task retires after ``schedule.stopped_retention`` anyway)."""
MAX_REFUSED = 10_000  # memory bound of the refused-task set
ENDED = {AI_TRANSCRIPTION: "Stopped"}  # any other generation (2.0) ends as Exited

Register = Callable[[Target, float], bool]
"""Adds a dynamic target with a TTL in seconds; False when refused (max_targets); raises
``EffectUnavailable`` when the registration store cannot be written now."""
Relay = Callable[[Effect], bool]
"""Sends an effect to the replica polling its task; False when no other replica got it."""
Find = Callable[[str, str], Key | None]
"""(api, task id) -> the key of the target in the whole set watching it, if any."""


class TaskEvents:
    """Implements ``EffectSink.apply``; ``start_failures()`` is read by the collector."""

    def __init__(self, poller: Poller, register: Register, config: Callable[[], Config],
                 find: Find | None = None, relay: Relay | None = None) -> None:
        """``find`` looks a task up in the whole target set (default: the poller's targets).
        With coordination another replica may own the task: it is watched, not new, and
        ``relay`` sends the effect to the replica polling it."""
        self._poller, self._register, self._config = poller, register, config
        self._find: Find = find or poller.find_task
        self._relay = relay
        self._lock = threading.Lock()
        self._failures: Counter[tuple[str, str]] = Counter()
        self._refused: set[tuple[str, str]] = set()  # sentences of these do not retry

    def apply(self, effect: Effect) -> bool:
        """Apply one effect (called once per unique event); ``EffectSink.apply``'s contract:
        False when the registration store or the relay to the polling replica is unavailable
        (a retry may succeed), else True; logs instead of raising."""
        try:
            return self._apply(effect)
        except EffectUnavailable as exc:
            log.warning("callback of task %s not applied, TRTC will retry: %s", effect.task_id,
                        exc)
            return False
        except Exception:  # TRTC must still get its 200; the next poll corrects the state
            log.exception("applying a %s callback of task %s failed", type(effect).__name__,
                          effect.task_id)
            return True

    def _apply(self, effect: Effect) -> bool:
        if isinstance(effect, StartFailed):
            with self._lock:
                self._failures[(effect.generation, str(effect.app))] += 1
            log.warning("TRTC reports that task %s of app %d failed to start", effect.task_id,
                        effect.app)
            return True
        if isinstance(effect, TaskStopped):
            if not self._here(effect) and self._relay is not None \
                    and self._find(effect.generation, effect.task_id) is not None:
                return self._relayed(effect)
            return True
        if self._watch(effect) is not None and not self._here(effect) \
                and self._relay is not None:
            return self._relayed(effect)  # watched, but polled by another replica
        return True

    def _relayed(self, effect: Effect) -> bool:
        """Relay to the replica polling the task; EffectUnavailable when none got it."""
        assert self._relay is not None
        if not self._relay(effect):
            raise EffectUnavailable("no other replica received it (coordination Redis "
                                    "unreachable, or the task's owner is changing)")
        return True

    def _here(self, effect: TaskStopped | TaskStarted | Sentence) -> bool:
        """Apply to the target polled here; False when this replica does not poll the task."""
        key = self._poller.find_task(effect.generation, effect.task_id)
        if key is None:
            return False
        if isinstance(effect, TaskStopped):
            return self._poller.observe(key, ended=ENDED.get(effect.generation, "Exited"),
                                        change_time=effect.event_time, confirm=True)
        if isinstance(effect, Sentence):
            return self._poller.observe(key, sentence_time=effect.event_time)
        return self._poller.observe(key, confirm=True)

    def apply_relayed(self, effect: Effect) -> None:
        """An effect another replica received (``coordination.relay``): applied when the task
        is polled here, dropped otherwise; never registers, never relays again, never raises."""
        if isinstance(effect, StartFailed):
            return  # counted where it was received
        try:
            self._here(effect)
        except Exception:
            log.exception("applying a relayed %s of task %s failed", type(effect).__name__,
                          effect.task_id)

    def _watch(self, effect: TaskStarted | Sentence) -> Key | None:
        """The key of the target watching the task, registering it first if needed."""
        key = self._find(effect.generation, effect.task_id)
        task = (effect.generation, effect.task_id)
        if not isinstance(effect, TaskStarted) and (key is not None or task in self._refused):
            return key  # a refused task is tried again at its next start, not every sentence
        config = self._config()
        target = Target(api=effect.generation, region=config.app_region(effect.app),
                        task_id=effect.task_id, sdk_app_id=effect.app, source=SOURCE)
        if key is None or key == target.key:  # a start refreshes its own registration's TTL
            ttl = config.registration.default_ttl or DEFAULT_TTL
            if not self._register(target, ttl) and key is None:
                with self._lock:
                    if len(self._refused) >= MAX_REFUSED:
                        self._refused.clear()
                    self._refused.add(task)
                return None
            self._refused.discard(task)
            if key is None:
                log.info("callback: watching %s of app %d", target.describe(), effect.app)
        return self._find(effect.generation, effect.task_id)

    def start_failures(self) -> dict[tuple[str, str], int]:
        """Failed starts counted so far by (api, sdk_app_id)."""
        with self._lock:
            return dict(self._failures)
