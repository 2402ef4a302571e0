"""Callback effects relayed to the replica that polls the task, over Redis pub/sub.

A TRTC callback lands on whichever replica the load balancer picked, but its effect on a task
(a stop shown at once, a sentence counted, a confirming poll) belongs where the task is polled:
that replica's record is the one it publishes and the others serve. The receiving replica, not
polling the task, publishes the effect on the cluster's ``events`` channel; every replica
listens, and the one polling the task applies it (the others find no such target and drop it).

Delivery is Redis pub/sub's: at most once, to the replicas subscribed at that moment
(https://redis.io/docs/interact/pubsub/, "Delivery semantics"). ``PUBLISH`` answers how many
subscribers got the message: when no other replica did (Redis unreachable, every other replica
cut off or resubscribing), :meth:`EffectRelay.publish` says so and the callback is answered 503,
so TRTC delivers it again. Still lost: an effect that reached the others while its task was
moving between owners (the new owner did not poll it yet, the old one no longer does): the next
poll shows a stop anyway, but that sentence is not counted. Messages carry only identities and
times (the effects' fields, never transcribed text), at most ``MAX_MESSAGE`` bytes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.link import Link
from trtc_exporter.webhook.effects import Effect, Sentence, StartFailed, TaskStarted, TaskStopped

log = logging.getLogger(__name__)
TYPES: dict[str, type[Any]] = {t.__name__: t
                               for t in (TaskStarted, StartFailed, TaskStopped, Sentence)}
MAX_MESSAGE = 4096
LISTEN_POLL = 0.25  # seconds a listener blocks on the socket before checking for a stop


def encode(effect: Effect, origin: str) -> str:
    """JSON of one effect: ``{"origin": member, "type": class name, **fields}``."""
    return json.dumps({"origin": origin, "type": type(effect).__name__,
                       **dataclasses.asdict(effect)}, separators=(",", ":"))


def decode(raw: bytes | str) -> tuple[str, Effect] | None:
    """(origin, effect) of a message; None for anything malformed (logged at debug)."""
    if len(raw) > MAX_MESSAGE:
        return None
    try:
        data = json.loads(raw)
        origin = data.pop("origin")
        kind = TYPES[data.pop("type")]
        effect: Effect = kind(**data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.debug("coordination: dropped a relayed effect that does not parse (%s)",
                  type(exc).__name__)
        return None
    if not isinstance(origin, str) or not isinstance(effect.task_id, str):
        return None
    return origin, effect


class EffectRelay:
    """Publishes this replica's relayed effects and applies the others'; never raises."""

    def __init__(self, client: redis.Redis, keys: Keys, link: Link, me: str) -> None:
        self._client = client
        self._channel = keys.events_channel
        self._link = link
        self._me = me
        self._subscribed = threading.Event()  # our own listener counts among PUBLISH's receivers

    def publish(self, effect: Effect) -> bool:
        """Send an effect to the replica polling its task; False when no other replica
        received it (Redis unreachable, or no other replica subscribed)."""
        if not self._link.usable():
            return False
        try:
            receivers = int(self._client.publish(self._channel, encode(effect, self._me)))
        except redis.RedisError as exc:
            self._link.failed(exc)
            return False
        return receivers - (1 if self._subscribed.is_set() else 0) >= 1

    def run(self, stop: threading.Event, apply: Callable[[Effect], None]) -> None:
        """Listen until ``stop``, calling ``apply`` for each effect another replica relayed;
        resubscribes after a Redis error once the link is up again."""
        while not stop.is_set():
            if not self._link.usable():
                stop.wait(1.0)
                continue
            try:
                self._listen(stop, apply)
            except redis.RedisError as exc:
                self._link.failed(exc)
                stop.wait(1.0)

    def _listen(self, stop: threading.Event, apply: Callable[[Effect], None]) -> None:
        # redis-py leaves pubsub() unannotated
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(self._channel)
            self._subscribed.set()
            while not stop.is_set():
                message = pubsub.get_message(timeout=LISTEN_POLL)
                if message is None or message.get("type") != "message":
                    continue
                decoded = decode(message["data"])
                if decoded is not None and decoded[0] != self._me:
                    apply(decoded[1])
        finally:
            self._subscribed.clear()
            pubsub.close()
