"""``--log.level`` and ``--log.format`` (logfmt or json), the formats Prometheus users grep."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "error": logging.ERROR}


def _timestamp(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# control characters (C0 but newline, which each format escapes as \n; DEL; C1) as \xNN, so text a
# client sent (a request line) cannot forge log lines or drive a terminal
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x0A}


def _message(record: logging.LogRecord) -> str:
    text = record.getMessage()
    if record.exc_info and record.exc_info[0] is not None:
        text += f" ({record.exc_info[0].__name__}: {record.exc_info[1]})"
    return text


class LogfmtFormatter(logging.Formatter):
    """Log lines as logfmt: ``ts=… level=… caller=… msg="…"`` (the Go exporters' shape)."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line: ``ts=… level=… caller=<logger> msg="…"``, quotes, backslashes,
        newlines and control characters escaped."""
        msg = _message(record).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        msg = msg.translate(_CONTROL)
        return (f'ts={_timestamp(record)} level={record.levelname.lower()} '
                f'caller={record.name} msg="{msg}"')


class JsonFormatter(logging.Formatter):
    """Log lines as one JSON object each, with the logfmt keys."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object per line with ``ts``, ``level``, ``caller`` and ``msg``."""
        return json.dumps({"ts": _timestamp(record), "level": record.levelname.lower(),
                           "caller": record.name, "msg": _message(record).translate(_CONTROL)},
                          ensure_ascii=False)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    """Route every log record to stderr in the chosen format at the chosen level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # urllib3 logs full URLs and headers at debug; keep it quiet even at --log.level=debug
    logging.getLogger("urllib3").setLevel(logging.WARNING)
