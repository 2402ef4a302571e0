"""Secret: a key never prints, pickles or leaks through formatting, yet compares and reveals."""

from __future__ import annotations

import copy
import logging
import pickle

import pytest

from trtc_exporter.api.credentials import Credentials
from trtc_exporter.secret import Secret

VALUE = "AKIDsuperSECRETvalue0123456789"


@pytest.fixture
def secret() -> Secret:
    return Secret(VALUE)


def test_reveal_returns_the_value(secret: Secret) -> None:
    """reveal() is the one way to get the string back."""
    assert secret.reveal() == VALUE


@pytest.mark.parametrize("render", [
    repr, str, format, ascii,
    lambda s: f"{s}", lambda s: f"{s!r}", lambda s: f"{s!s}", lambda s: f"{s:>40}",
    lambda s: "%s" % s, lambda s: "%r" % s, lambda s: "{}".format(s),  # noqa: UP031, UP032
    lambda s: "{:^9}".format(s),  # noqa: UP032 - str.format is the point here
    lambda s: repr([s, {"k": s}, (s,)]),
    lambda s: repr(Credentials(s, s, s)),
], ids=["repr", "str", "format", "ascii", "fstring", "fstring-r", "fstring-s", "fstring-spec",
        "percent-s", "percent-r", "str-format", "str-format-spec", "containers", "credentials"])
def test_no_rendering_shows_the_value(secret: Secret, render: object) -> None:
    """Every way of turning a Secret (or something holding one) into text hides the value."""
    text = render(secret)  # type: ignore[operator]
    assert VALUE not in text and "<secret>" in text


def test_logging_hides_the_value(secret: Secret, caplog: pytest.LogCaptureFixture) -> None:
    """Log records formatted with a Secret argument show <secret>."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("key=%s repr=%r", secret, secret)
    assert VALUE not in caplog.text and "key=<secret> repr=<secret>" in caplog.text


def test_exception_text_hides_the_value(secret: Secret) -> None:
    """An exception built from a Secret does not carry the value in its text or repr."""
    error = ValueError("bad key", secret)
    assert VALUE not in str(error) and VALUE not in repr(error)
    assert str(ValueError(secret)) == "<secret>"


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickling_is_refused(secret: Secret, protocol: int) -> None:
    """A Secret cannot be pickled with any protocol, alone or inside credentials."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret, protocol=protocol)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Credentials(secret, secret), protocol=protocol)


def test_copies_are_the_same_object(secret: Secret) -> None:
    """copy and deepcopy work (a Secret is immutable) and return the same object."""
    assert copy.copy(secret) is secret
    creds = Credentials(secret, secret)
    assert copy.deepcopy(creds).secret_id is secret


def test_equality_and_hashing() -> None:
    """Secrets compare by value, never equal a plain string, and hash consistently."""
    assert Secret("a") == Secret("a")
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"
    assert len({Secret("a"), Secret("a"), Secret("b")}) == 2


def test_truthiness_follows_the_value() -> None:
    """An empty Secret is falsy, any other truthy."""
    assert not Secret("") and Secret("x")


def test_secret_is_immutable(secret: Secret) -> None:
    """The value cannot be replaced or deleted after construction."""
    with pytest.raises(AttributeError):
        secret._value = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del secret._value
    assert secret.reveal() == VALUE
