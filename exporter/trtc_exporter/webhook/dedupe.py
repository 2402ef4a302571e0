"""Apply each callback once although TRTC may deliver it several times.

TRTC retries a delivery that got no 200 within 5 s at once, then every 10 s for one minute (doc
66149, "Timeout Retry"), so the same event can arrive several times. Tencent's own advice for the
newer event groups is to de-duplicate by TaskId + event type + EventMsTs (doc
https://cloud.tencent.com/document/product/647/139212). The key here is (SdkAppId, EventType,
TaskId, EventMsTs), remembered for ``ttl``: at least 10 minutes (ten times TRTC's retry
window), and as long as the receiver would still accept the same body (``max_age`` plus the
future tolerance, see :func:`trtc_exporter.webhook.receiver.replay_window`), so a captured callback
replayed inside its acceptance window is a duplicate, never applied twice.

Memory is bounded: at most ``max_entries`` keys (default 100 000; a key is a tuple of two ints, a
task id of at most 256 characters and an int, about 0.5 KiB with the dict slot, so about 50 MiB
at the very worst and a few MiB for realistic ids). When a flood fills it, the oldest key is
forgotten early and counted in ``evicted``: a retry of that one event arriving later would be
applied a second time (harmless for start/stop, one extra sentence counted), while the exporter
keeps its memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from trtc_exporter.clock import Clock

DEFAULT_TTL = 600.0
DEFAULT_MAX_ENTRIES = 100_000


class Deduper:
    """A thread-safe TTL set on an injectable clock (monotonic time)."""

    def __init__(self, clock: Clock, ttl: float = DEFAULT_TTL,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("ttl must be > 0 and max_entries >= 1")
        self._clock, self._ttl, self._max = clock, ttl, max_entries
        self._expiry: OrderedDict[Hashable, float] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0  # keys forgotten before their time because the set was full

    def set_ttl(self, ttl: float) -> None:
        """Remember keys seen from now on for ``ttl`` seconds (a reload); keys already held keep
        their expiry. ValueError unless ``ttl`` > 0."""
        if ttl <= 0:
            raise ValueError("ttl must be > 0")
        with self._lock:
            self._ttl = ttl

    def first_time(self, key: Hashable) -> bool:
        """True the first time ``key`` is seen within ``ttl`` (and remember it); else False."""
        now = self._clock.monotonic()
        with self._lock:
            self._expire(now)
            if key in self._expiry:
                return False
            if len(self._expiry) >= self._max:
                self._expiry.popitem(last=False)
                self.evicted += 1
            self._expiry[key] = now + self._ttl
            return True

    def forget(self, key: Hashable) -> None:
        """Forget ``key`` (its event was not applied: the next delivery must be)."""
        with self._lock:
            self._expiry.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def _expire(self, now: float) -> None:
        """Drop expired keys from the front: insertion order is expiry order while the ttl is
        constant; after a shorter ``set_ttl`` a later key may outlive its time behind an earlier
        one (kept longer, never forgotten early)."""
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[key]
