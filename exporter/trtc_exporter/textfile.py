"""THE reader of operator text files: config, target files, web config, credential, token and key
files.

Files come from editors and tools on every platform: Notepad writes a UTF-8 byte-order mark,
PowerShell's ``>`` writes UTF-16, Windows editors end lines with CRLF, ``echo`` adds a newline.
Every reader goes through here so each form either works or fails with the real problem named
("file is UTF-16; save it as UTF-8"), never as a puzzling YAML error or a key that does not match.

Accepted: UTF-8 with or without a BOM, LF or CRLF line ends (CRLF and lone CR become LF),
trailing blank or whitespace-only lines (removed).
Refused, with the problem named: UTF-16 and UTF-32 (by their BOM, or NUL bytes without one), bytes
that are not UTF-8 (with the offset), files beyond the caller's size limit (read no further).
"""

from __future__ import annotations

import codecs

MAX_TEXT_BYTES = 32 << 20
"""Config and target files: 32 MiB holds ~800 000 minimal entries, far past any max_targets."""
MAX_SECRET_BYTES = 64 << 10
"""Credential, token and key files: one line of a few dozen characters, with room to spare."""
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
              (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


class TextFileError(Exception):
    """A file that cannot be used as text; the message is the problem alone ("No such file or
    directory", "file is UTF-16; save it as UTF-8"), each caller puts its path in front."""


class UnreadableFile(TextFileError):
    """The file could not be opened or read (the message is the system's: "Permission denied")."""


def read_bytes(path: str, max_bytes: int = MAX_TEXT_BYTES) -> bytes:
    """The file's bytes, reading at most ``max_bytes`` + 1; TextFileError if unreadable or
    larger than ``max_bytes``."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or type(exc).__name__) from None
    except ValueError:  # a NUL in the path
        raise TextFileError("invalid path") from None
    if len(data) > max_bytes:
        raise TextFileError(f"larger than {_size(max_bytes)}; refused without reading further")
    return data


def decode(data: bytes) -> str:
    """UTF-8 text with any BOM removed and line ends made LF; TextFileError naming the problem."""
    for bom, name in _WIDE_BOMS:
        if data.startswith(bom):
            raise TextFileError(f"file is {name}; save it as UTF-8")
    if b"\x00" in data:
        raise TextFileError("file contains NUL bytes (UTF-16 without a byte-order mark?); "
                            "save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"not UTF-8 (byte offset {exc.start}); save it as UTF-8") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    # trailing blank lines with a tab or spaces make YAML fail ("found character '\t' that
    # cannot start any token"); they hold nothing, so the text ends at its last visible line
    return text.rstrip() + "\n" if text.strip() else ""


def read_text(path: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
    """:func:`read_bytes` then :func:`decode`."""
    return decode(read_bytes(path, max_bytes))


def read_secret(path: str, max_bytes: int = MAX_SECRET_BYTES) -> str:
    """A one-value file (key, token): its text without surrounding whitespace and line ends.

    Returns "" for an empty (or whitespace-only) file; the caller says what must be there.
    """
    return read_text(path, max_bytes).strip()


def _size(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 else f"{limit >> 10} KiB"
