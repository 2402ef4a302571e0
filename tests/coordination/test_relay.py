"""Callback effects relayed between replicas over Redis pub/sub: the codec and the listener."""

from __future__ import annotations

import threading

import pytest
import redis

from trtc_exporter.clock import SystemClock
from trtc_exporter.coordination.keys import Keys
from trtc_exporter.coordination.link import Link
from trtc_exporter.coordination.relay import MAX_MESSAGE, EffectRelay, decode, encode
from trtc_exporter.webhook.effects import Effect, Sentence, StartFailed, TaskStarted, TaskStopped

from .conftest import RedisProcess

AI = "ai_transcription"
EFFECTS: list[Effect] = [
    TaskStarted(1400000001, "t-1", AI, 1_795_514_000.5, "room", 1, "robot"),
    StartFailed(1400000001, "t-2", AI, 1_795_514_001.0),
    TaskStopped(1400000001, "t-3", "cloud_transcription", 1_795_514_002.25),
    Sentence(1400000001, "t-4", AI, 1_795_514_003.0),
]


@pytest.mark.parametrize("effect", EFFECTS, ids=lambda e: type(e).__name__)
def test_every_effect_survives_the_codec(effect: Effect) -> None:
    """decode(encode(e)) gives the same effect and its origin."""
    assert decode(encode(effect, "me")) == ("me", effect)


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b'{"origin": "x"}',
                                 b'{"origin": "x", "type": "Nope", "task_id": "t"}',
                                 b'{"origin": "x", "type": "Sentence", "task_id": "t"}',
                                 b'{"origin": 1, "type": "Sentence", "app": 1, "task_id": "t", '
                                 b'"generation": "g", "event_time": 1}',
                                 b"x" * (MAX_MESSAGE + 1)])
def test_malformed_messages_are_dropped(raw: bytes) -> None:
    """Anything that is not one whole effect decodes to None instead of raising."""
    assert decode(raw) is None


@pytest.mark.integration
def test_a_published_effect_reaches_the_other_replica_only(redis_server: RedisProcess,
                                                           rdb: redis.Redis) -> None:
    """B's listener applies what A publishes, and A's listener skips A's own message."""
    clock, keys = SystemClock(), Keys("relay")
    relays = {name: EffectRelay(redis_server.client(), keys,
                                Link(redis_server.client(), clock), name) for name in "ab"}
    applied: dict[str, list[Effect]] = {"a": [], "b": []}
    got = threading.Event()
    stop = threading.Event()

    def sink(name: str) -> object:
        def apply(effect: Effect) -> bool:
            applied[name].append(effect)
            got.set()
            return True
        return apply

    threads = [threading.Thread(target=relays[n].run, args=(stop, sink(n))) for n in "ab"]
    for thread in threads:
        thread.start()
    try:
        while rdb.pubsub_numsub(keys.events_channel)[0][1] < 2:
            stop.wait(0.01)  # both listeners subscribed (real Redis, real time)
        assert relays["a"].publish(EFFECTS[3])  # b received it
        assert got.wait(5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(5)
    assert applied == {"a": [], "b": [EFFECTS[3]]}


@pytest.mark.integration
def test_publishing_with_no_other_replica_listening_says_so(redis_server: RedisProcess,
                                                           rdb: redis.Redis) -> None:
    """A's own listener does not count: with no other subscriber the effect was not relayed."""
    clock, keys = SystemClock(), Keys("alone")
    relay = EffectRelay(redis_server.client(), keys, Link(redis_server.client(), clock), "a")
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop, lambda effect: True))
    thread.start()
    try:
        while rdb.pubsub_numsub(keys.events_channel)[0][1] < 1:
            stop.wait(0.01)
        assert relay.publish(EFFECTS[3]) is False
    finally:
        stop.set()
        thread.join(5)


def test_publishing_while_redis_is_down_says_so(redis_server: RedisProcess) -> None:
    """No Redis, no relay: False (the callback is then answered 503), never an exception."""
    clock = SystemClock()
    link = Link(redis_server.client(), clock, retry_interval=60.0)
    link.failed(redis.ConnectionError())
    relay = EffectRelay(redis_server.client(), Keys("down"), link, "a")
    assert relay.publish(EFFECTS[3]) is False
