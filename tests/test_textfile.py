"""The one reader of operator text files, and every file kind read through it in every form
other tools write: BOM, CRLF, trailing whitespace work; UTF-16/32 and non-UTF-8 are named."""

from __future__ import annotations

import codecs
from collections.abc import Callable
from pathlib import Path

import pytest

from trtc_exporter.api.credentials import CredentialsError, FileProvider, ProfileProvider
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import load_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.targets.files import TargetFiles
from trtc_exporter.targets.sources import read_bearer_token
from trtc_exporter.textfile import TextFileError, decode, read_bytes, read_secret
from trtc_exporter.web.toolkit.webconfig import WebConfigError, load_web_config
from trtc_exporter.webhook.keys import KeyFileError, read_key

SECRET = "AKIDsecret0123"


def utf8_bom(text: str) -> bytes:
    return codecs.BOM_UTF8 + text.encode()


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def trailing(text: str) -> bytes:
    return (text + "  \n\n\t\n").encode()


def all_three(text: str) -> bytes:
    return codecs.BOM_UTF8 + crlf(text + "   \n\n")


WORKING = {"utf8-bom": utf8_bom, "crlf": crlf, "trailing-whitespace": trailing,
           "bom-crlf-trailing": all_three}
BROKEN = {"utf16-le": (lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
                       "file is UTF-16; save it as UTF-8"),
          "utf16-be": (lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
                       "file is UTF-16; save it as UTF-8"),
          "utf32": (lambda t: codecs.BOM_UTF32_LE + t.encode("utf-32-le"),
                    "file is UTF-32; save it as UTF-8"),
          "utf16-no-bom": (lambda t: t.encode("utf-16-le"), "file contains NUL bytes (UTF-16 "
                           "without a byte-order mark?); save it as UTF-8"),
          "latin1": (lambda t: t.encode() + b"\xe9\n", "not UTF-8 (byte offset"),
          }


def test_decode_normalises_line_ends_and_drops_the_bom() -> None:
    """CRLF and lone CR become LF; a leading UTF-8 BOM and trailing blank lines are dropped."""
    assert decode(codecs.BOM_UTF8 + b"a\r\nb\rc\n \t\n\n") == "a\nb\nc\n"
    assert decode(b" \n\t\n") == ""


def test_a_file_past_the_limit_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    """read_bytes stops at the limit + 1 byte and names the limit."""
    (tmp_path / "big").write_bytes(b"x" * (2 << 20))
    with pytest.raises(TextFileError, match=r"^larger than 1 MiB; refused"):
        read_bytes(str(tmp_path / "big"), 1 << 20)


def test_a_secret_is_its_text_without_surrounding_whitespace(tmp_path: Path) -> None:
    """read_secret strips spaces, tabs, CR and LF around the value, not inside it."""
    (tmp_path / "s").write_bytes(b"\xef\xbb\xbf  a b\t\r\n\r\n")
    assert read_secret(str(tmp_path / "s")) == "a b"


# -- every file kind, every form ----------------------------------------------------------------

CONFIG = "api:\n  region: ap-guangzhou\ntargets:\n  - task_id: t-1\n    labels: {ver: 1.10}\n"
TARGETS = "- task_id: f-1\n  labels: {ver: 1.10}\n"
WEB = "basic_auth_users:\n  1001: $2b$04$abcdefghijklmnopqrstuuE2uhx3dL2X3M6hqVWTmPC0YfTnvXx5W\n"


def read_config(path: Path) -> str:
    config = load_config(path)
    return f"{config.targets[0].task_id} {dict(config.targets[0].labels)}"


def read_targets(path: Path) -> str:
    files = TargetFiles((str(path),), FakeClock())
    files.refresh(force=True)
    state = files.files[str(path)]
    if not state.ok:
        raise ConfigError([state.error])
    return f"{state.targets[0].task_id} {dict(state.targets[0].labels)}"


def read_web(path: Path) -> str:
    return ",".join(load_web_config(str(path)).users)


def read_token(path: Path) -> str:
    token = read_bearer_token(str(path))
    assert token is not None
    return token.reveal()


def read_webhook_key(path: Path) -> str:
    return read_key(str(path), "webhook.key_file").reveal()


def read_credentials(path: Path) -> str:
    return FileProvider(path, path).get().secret_id.reveal()


def read_profile(path: Path) -> str:
    # trailing spaces after a value broke SDKs' INI readers (aws/aws-sdk-js#489)
    return ProfileProvider(path).get().secret_key.reveal()


KINDS: dict[str, tuple[str, Callable[[Path], str], str]] = {
    "config": (CONFIG, read_config, "t-1 {'ver': '1.10'}"),
    "target-file": (TARGETS, read_targets, "f-1 {'ver': '1.10'}"),
    "web-config": (WEB, read_web, "1001"),
    "bearer-token": (SECRET + "\n", read_token, SECRET),
    "webhook-key": (SECRET + "\n", read_webhook_key, SECRET),
    "credentials": (SECRET + "\n", read_credentials, SECRET),
    "profile": (f"[default]\nsecret_id = AKIDx   \nsecret_key = {SECRET}  \n", read_profile,
                SECRET),
}
ERRORS = (ConfigError, WebConfigError, KeyFileError, CredentialsError)


@pytest.mark.parametrize("form", WORKING)
@pytest.mark.parametrize("kind", KINDS)
def test_every_file_kind_reads_every_harmless_form(tmp_path: Path, kind: str, form: str) -> None:
    """A BOM, CRLF line ends or trailing whitespace change nothing in what is read."""
    text, read, expected = KINDS[kind]
    path = tmp_path / "file.yml"
    path.write_bytes(WORKING[form](text))
    assert read(path) == expected


@pytest.mark.parametrize("form", BROKEN)
@pytest.mark.parametrize("kind", KINDS)
def test_every_file_kind_names_the_real_encoding_problem(tmp_path: Path, kind: str,
                                                        form: str) -> None:
    """UTF-16/32 (with or without a BOM) and Latin-1 bytes fail naming the encoding, not YAML."""
    text, read, _ = KINDS[kind]
    make, message = BROKEN[form]
    path = tmp_path / "file.yml"
    path.write_bytes(make(text))
    with pytest.raises(ERRORS) as caught:
        read(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value) or (kind == "config" and "file.yml" in str(caught.value))
