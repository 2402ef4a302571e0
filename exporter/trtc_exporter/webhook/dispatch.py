"""Carry out an :class:`~.receiver.Outcome`: apply its effect, then relay the callback.

The listener calls :func:`dispatch` after :meth:`Receiver.handle` and before answering TRTC. Both
steps are quick and local (an in-memory state change, or a Redis call with coordination; a
SQLite insert), so the 200 never waits on the downstream server. An effect that cannot be
applied now is not relayed either: the callback is answered 503 and TRTC's retry does both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from trtc_exporter.webhook.effects import EffectSink
from trtc_exporter.webhook.receiver import Outcome


class Relay(Protocol):
    """What :class:`~.forward.Forwarder` offers the listener."""

    def enqueue(self, body: bytes, sign: str | None, sdk_app_id: str, task_key: str) -> bool:
        """Queue one verified callback for forwarding; False when the queue refuses it (full or
        failed)."""


def task_key(outcome: Outcome) -> str:
    """The ordering key of a callback in the forward queue: ``<app>/<task id>`` (``<app>/`` for
    events without a task we know, which then keep their order among themselves)."""
    task = outcome.event.task_id if outcome.event is not None else ""
    return f"{outcome.app}/{task}"


def dispatch(outcome: Outcome, headers: Mapping[str, str], body: bytes, sink: EffectSink,
             relay: Relay | None = None) -> bool:
    """Hand the effect (if any) to the sink, then relay (when ``outcome.forward``) the raw body
    with ``Sign`` and ``SdkAppId`` exactly as received. False, with nothing relayed, when the
    sink could not apply the effect now (see ``EffectSink.apply``)."""
    if outcome.effect is not None and not sink.apply(outcome.effect):
        return False
    if relay is not None and outcome.forward:
        lower = {name.lower(): value for name, value in headers.items()}
        relay.enqueue(body, lower.get("sign"), lower.get("sdkappid", ""), task_key(outcome))
    return True
