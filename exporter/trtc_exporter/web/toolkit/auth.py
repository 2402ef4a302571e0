"""Basic-auth checks that a flood of wrong passwords cannot turn into a denial of service.

bcrypt is slow on purpose (≈ 50 ms at cost 10 here), so who may spend it matters:

- a success is cached (keyed digests of user, stored hash and password, as the exporter-toolkit
  caches ``user:hash:password``), so a scraper pays bcrypt once, and a cached login passes
  whatever else is going on;
- at most ``slots`` checks run at once (one per CPU; pyca/bcrypt releases the GIL), never one
  global lock: the toolkit's ``bcryptMtx`` is what let 32 wrong-password clients keep a real first
  login waiting 5.5 s;
- one client address runs at most :data:`PER_CLIENT_CHECKS` checks at once, and after
  :data:`FAILURE_LIMIT` failures in :data:`FAILURE_WINDOW_SECONDS` it is refused without a check
  until the window passes: a flood from one place cannot take the slots from everyone else;
- passwords longer than 72 bytes are cut to 72 before the check, as Go's
  ``bcrypt.CompareHashAndPassword`` (golang.org/x/crypto/bcrypt) effectively does: it hands the
  whole password to Blowfish's key schedule, which reads only 72 bytes (``ErrPasswordTooLong``
  is returned by ``GenerateFromPassword`` alone). So a hash that ``htpasswd -B`` made from the
  first 72 bytes accepts the whole password, exactly as node_exporter does. pyca/bcrypt 5
  raises ValueError for > 72 bytes instead of cutting.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import Enum

import bcrypt

from trtc_exporter.clock import SYSTEM_CLOCK, Clock
from trtc_exporter.web.toolkit.webconfig import WebConfig

__all__ = ["AUTH_CACHE_SIZE", "FAILURE_LIMIT", "FAILURE_WINDOW_SECONDS", "PER_CLIENT_CHECKS",
           "BasicAuthenticator", "CheckPw", "Verdict"]

AUTH_CACHE_SIZE = 100
BCRYPT_MAX_BYTES = 72
FAILURE_LIMIT = 10
FAILURE_WINDOW_SECONDS = 60.0
PER_CLIENT_CHECKS = 2
CLIENTS_TRACKED = 4096  # failure records kept (oldest dropped): memory stays bounded
CheckPw = Callable[[bytes, bytes], bool]


class Verdict(Enum):
    """The outcome of one check: OK, WRONG (401), or THROTTLED (429, no bcrypt was spent)."""

    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"


class BasicAuthenticator:
    """bcrypt checks with a cache of successes, a bounded pool and per-client throttling.

    Unknown users pay a decoy check, so timing does not reveal who exists. ``checkpw`` and
    ``clock`` are injectable so tests can count the expensive calls and move time.
    """

    def __init__(self, checkpw: CheckPw = bcrypt.checkpw, cache_size: int = AUTH_CACHE_SIZE,
                 slots: int | None = None, clock: Clock = SYSTEM_CLOCK) -> None:
        self._checkpw = checkpw
        self._cache: OrderedDict[bytes, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(slots or os.cpu_count() or 1)
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._key = secrets.token_bytes(32)
        self._decoys: dict[int, bytes] = {}

    def verify(self, config: WebConfig, username: str, password: bytes,
               client: str = "") -> bool:
        """True when ``username`` is configured and ``password`` matches its bcrypt hash."""
        return self.check(config, username, password, client) is Verdict.OK

    def check(self, config: WebConfig, username: str, password: bytes,
              client: str = "") -> Verdict:
        """The verdict for these credentials from ``client`` (its address)."""
        stored = config.users.get(username)
        hashed = stored.reveal().encode() if stored is not None else None
        if hashed is not None:
            slot = self._mac(b"slot", username.encode(), hashed)
            proof = self._mac(b"proof", username.encode(), hashed, password)
            with self._lock:
                cached = self._cache.get(slot)
            if cached is not None and hmac.compare_digest(cached, proof):
                return Verdict.OK
        if not self._admit(client):
            return Verdict.THROTTLED
        try:
            ok = self._check(password, hashed or self._decoy(config.dummy_cost))
        finally:
            with self._lock:
                self._running[client] -= 1
                if not self._running[client]:
                    del self._running[client]
        if not ok or hashed is None:
            self._failed(client)
            return Verdict.WRONG
        with self._lock:
            self._cache[slot] = proof
            self._cache.move_to_end(slot)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return Verdict.OK

    def _admit(self, client: str) -> bool:
        """Reserve one of the client's concurrent checks unless it is throttled."""
        now = self._clock.monotonic()
        with self._lock:
            failures = self._failures.get(client)
            while failures and failures[0] <= now - FAILURE_WINDOW_SECONDS:
                failures.popleft()
            if failures is not None and len(failures) >= FAILURE_LIMIT:
                return False
            if self._running.get(client, 0) >= PER_CLIENT_CHECKS:
                return False
            self._running[client] = self._running.get(client, 0) + 1
            return True

    def _failed(self, client: str) -> None:
        with self._lock:
            failures = self._failures.setdefault(client, deque(maxlen=FAILURE_LIMIT))
            failures.append(self._clock.monotonic())
            self._failures.move_to_end(client)
            while len(self._failures) > CLIENTS_TRACKED:
                self._failures.popitem(last=False)

    def _mac(self, *parts: bytes) -> bytes:
        message = b"".join(len(part).to_bytes(4, "big") + part for part in parts)
        return hmac.new(self._key, message, hashlib.sha256).digest()

    def _check(self, password: bytes, hashed: bytes) -> bool:
        with self._slots:
            try:
                return bool(self._checkpw(password[:BCRYPT_MAX_BYTES], hashed))
            except ValueError:  # a hash pyca/bcrypt cannot read: no match, as in Go
                return False

    def _decoy(self, cost: int) -> bytes:
        with self._lock:
            if cost not in self._decoys:
                salt = bcrypt.gensalt(rounds=cost)
                self._decoys[cost] = bcrypt.hashpw(secrets.token_hex(16).encode(), salt)
            return self._decoys[cost]
