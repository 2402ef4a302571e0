"""Local clock offset from the API's ``Date`` headers.

The API rejects signatures more than 300 s off its clock (AuthFailure.SignatureExpire); measuring
the offset lets an operator fix NTP before that happens. ``Date`` has one-second resolution, so we
smooth with an exponential moving average.
"""

from __future__ import annotations

import logging
import threading
from email.utils import parsedate_to_datetime

log = logging.getLogger("trtc_exporter.skew")  # caller= stays as before
WARN_ABOVE_SECONDS = 60.0


class SkewEstimator:
    """Server clock minus local clock, in seconds (positive: our clock is behind), from
    response ``Date`` headers (one-second resolution) smoothed by an exponential moving average."""

    def __init__(self, alpha: float = 0.2) -> None:
        self._alpha = alpha
        self._value: float | None = None
        self._warned = False
        self._lock = threading.Lock()
        self._last: tuple[str, float] = ("", 0.0)  # the last Date header read, its epoch s

    @property
    def seconds(self) -> float:
        """Server clock minus local clock; 0 until the first measurement."""
        return self._value or 0.0

    def observe(self, date_header: str | None, sent_at: float, received_at: float) -> None:
        """Compare a response's Date with the midpoint of the request's local wall time."""
        server = self._server_time(date_header) if date_header else None
        if server is None:
            return
        # Date is truncated to the second: +0.5 s centres it on average.
        sample = server + 0.5 - (sent_at + received_at) / 2
        with self._lock:
            if self._value is None:
                self._value = sample
            else:
                self._value += self._alpha * (sample - self._value)
            value = self._value
        self._warn(value)

    def _server_time(self, date_header: str) -> float | None:
        """The header's instant (epoch s), None when unparsable; the answers of one second
        carry the same header, so the last one read is kept (its parse costs more than the rest
        of the estimate)."""
        last = self._last
        if last[0] == date_header:
            return last[1]
        try:
            server = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        self._last = (date_header, server)
        return server

    def _warn(self, value: float) -> None:
        if abs(value) > WARN_ABOVE_SECONDS and not self._warned:
            self._warned = True
            log.warning("local clock is %.0f s off the API's clock; above 300 s every request "
                        "fails with AuthFailure.SignatureExpire: check NTP", -value)
        elif abs(value) < WARN_ABOVE_SECONDS / 2:
            self._warned = False
