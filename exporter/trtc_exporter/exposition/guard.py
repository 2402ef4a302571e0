"""The one home of a rule every rendering collector keeps: a bug must not turn /metrics into a 500.

A collector whose families are computed from snapshots (tasks, per-app totals, webhooks) renders
through :func:`rendered`: an exception is logged with its traceback under the collector's own
logger (so ``caller=`` stays what operators query) and the collector yields nothing for that
scrape; the other collectors, the exporter's own health among them, are still served.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client.core import Metric


def rendered(render: Callable[[], list[Metric]], log: logging.Logger,
             message: str) -> list[Metric]:
    """``render()``'s families, or ``[]`` after logging ``message`` with the exception."""
    try:
        return render()
    except Exception:  # a rendering bug must not turn /metrics into a 500
        log.exception(message)
        return []
