"""Callback key files: cleaned like credential files, validated, never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from trtc_exporter.errors import ConfigError
from trtc_exporter.secret import Secret
from trtc_exporter.webhook.keys import KeyFileError, KeyRing, load_keyring, read_key


@pytest.mark.parametrize("content", [b"Key123", b"Key123\n", b"Key123\r\n",
                                     b"\xef\xbb\xbfKey123\n", b"Key123\n\n", b" Key123 \t\r\n"])
def test_line_ends_whitespace_and_a_bom_are_removed(tmp_path: Path, content: bytes) -> None:
    """LF, CRLF, surrounding whitespace and a UTF-8 BOM are not part of the key."""
    path = tmp_path / "k"
    path.write_bytes(content)
    assert read_key(str(path), "webhook.key_file") == Secret("Key123")


@pytest.mark.parametrize("content", [b"Key 123", b"\xff\xfeK\x00e\x00y\x00", b"x" * 33,
                                     b"Key-123", b"\xff"])
def test_anything_but_1_to_32_letters_and_digits_is_refused(tmp_path: Path,
                                                             content: bytes) -> None:
    """Inner spaces, UTF-16, 33 characters, symbols or non-UTF-8 are errors hiding the key."""
    path = tmp_path / "k"
    path.write_bytes(content)
    with pytest.raises(KeyFileError) as caught:
        read_key(str(path), "webhook.key_file")
    assert str(caught.value).startswith(f"webhook.key_file: {path}: ")
    assert "Key" not in str(caught.value).split(": ", 2)[2]


def test_an_empty_or_missing_file_is_refused(tmp_path: Path) -> None:
    """An empty file and a missing one say so."""
    (tmp_path / "empty").write_bytes(b"\n")
    with pytest.raises(KeyFileError, match="is empty"):
        read_key(str(tmp_path / "empty"), "webhook.key_file")
    with pytest.raises(KeyFileError, match="cannot read: No such file or directory"):
        read_key(str(tmp_path / "absent"), "webhook.key_file")


def test_the_keyring_prefers_the_apps_own_key(tmp_path: Path) -> None:
    """apps.<id>.callback_key_file wins over webhook.key_file; other apps get the default."""
    (tmp_path / "d").write_text("Default1\n")
    (tmp_path / "a").write_text("AppKey1\n")
    ring = load_keyring(str(tmp_path / "d"), {1400: str(tmp_path / "a")}, False)
    assert ring.key_for(1400) == Secret("AppKey1")
    assert ring.key_for(1401) == Secret("Default1")
    assert "AppKey1" not in repr(ring) and "Default1" not in repr(ring)
    assert KeyRing().key_for(1400) is None


def test_every_unusable_key_file_is_reported_at_once(tmp_path: Path) -> None:
    """A bad default and a bad app key give two ConfigError lines, by field path."""
    with pytest.raises(ConfigError) as caught:
        load_keyring(str(tmp_path / "nope"), {7: str(tmp_path / "nope2")}, False)
    assert caught.value.lines == [
        f"webhook.key_file: {tmp_path / 'nope'}: cannot read: No such file or directory",
        f"apps.7.callback_key_file: {tmp_path / 'nope2'}: cannot read: No such file or directory",
    ]
