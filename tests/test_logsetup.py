"""Log formats: one line per record, whatever text a client managed to put in a message."""

from __future__ import annotations

import json
import logging

import pytest

from trtc_exporter.logsetup import JsonFormatter, LogfmtFormatter

HOSTILE = 'GET /\x1b[2J\r\nts=forged level=error msg="x"\x7f\x85 HTTP/1.1'


def _record(message: str) -> logging.LogRecord:
    return logging.LogRecord("trtc_exporter.web", logging.DEBUG, __file__, 1, "%s", (message,),
                             None)


@pytest.mark.parametrize("formatter", [LogfmtFormatter(), JsonFormatter()])
def test_control_characters_are_escaped(formatter: logging.Formatter) -> None:
    """Escape, CR, LF, DEL and C1 characters never reach the log raw: one line, no forgery."""
    line = formatter.format(_record(HOSTILE))
    assert "\n" not in line and "\r" not in line
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in line)
    assert "\\x1b[2J" in line


def test_json_lines_stay_json() -> None:
    """The JSON format still parses, with the escapes visible in the message."""
    msg = json.loads(JsonFormatter().format(_record(HOSTILE)))["msg"]
    assert msg.startswith("GET /\\x1b[2J\\x0d\n")
