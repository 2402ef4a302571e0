"""The libyaml-backed strict loader gives the pure loader's results and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trtc_exporter import yamlload
from trtc_exporter.yamlload import YamlError, load_yaml

FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.yml"))


def _outcome(load: object, text: str) -> object:
    try:
        return load(text)  # type: ignore[operator]
    except YamlError as exc:
        return ("error", str(exc), exc.summary, exc.converting)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_same_outcome_as_the_pure_loader(path: Path) -> None:
    """Every fixture loads to the same value, or fails with the same message, either way."""
    text = path.read_text(encoding="utf-8")
    assert _outcome(load_yaml, text) == _outcome(yamlload._load_pure, text)


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a: [1, 2\n", "when: 2026-13-45\n",
                                  "n: " + "9" * 5000 + "\n", "x: &a {b: 1}\ny: {<<: *a, b: 2}\n"])
def test_errors_are_worded_by_the_pure_loader(text: str) -> None:
    """Duplicate keys, syntax and conversion errors keep the pure loader's wording."""
    assert _outcome(load_yaml, text) == _outcome(yamlload._load_pure, text)


def test_libyaml_is_used_when_present() -> None:
    """With PyYAML built against libyaml, the fast loader is the C one."""
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    assert yamlload._FastLoader is not None
    assert issubclass(yamlload._FastLoader, yaml.CSafeLoader)
