"""The one strict YAML loader: duplicate keys refused, operator text kept where text is meant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from trtc_exporter import yamlload
from trtc_exporter.config.model import parse_config_text
from trtc_exporter.yamlload import YamlError, load_yaml

# every YAML 1.1 plain scalar that PyYAML would turn into something other than its text
YAML11 = ["1.10", "1", "012", "0x1F", "0o17", "1_000", "1e3", ".inf", "-.Inf", ".nan", "yes", "no",
          "on", "off", "true", "False", "2026-01-02", "2026-01-02T03:04:05Z", "1:30", "0b101"]


def labels_of(text: str) -> dict[str, Any]:
    raw = load_yaml(text, keep_text=True)
    assert isinstance(raw, dict)
    labels = raw["targets"][0]["labels"]
    assert isinstance(labels, dict)
    return labels


@pytest.mark.parametrize("written", YAML11)
def test_label_values_keep_the_text_written(written: str) -> None:
    """``ver: 1.10`` is the label value "1.10": no YAML 1.1 conversion reaches a label."""
    assert labels_of(f"targets:\n- task_id: t\n  labels: {{v: {written}}}\n") == {"v": written}


@pytest.mark.parametrize("written", YAML11)
def test_label_names_keep_the_text_written(written: str) -> None:
    """A label name ``on`` stays "on" (YAML 1.1 would make it the boolean true)."""
    assert labels_of(f"targets:\n- task_id: t\n  labels: {{{written}: x}}\n") == {written: "x"}


@pytest.mark.parametrize("written", ["", "~", "null"])
def test_null_still_means_not_set(written: str) -> None:
    """An empty, ``~`` or ``null`` value is null, so it is refused with a clear message."""
    assert labels_of(f"targets:\n- task_id: t\n  labels: {{v: {written}}}\n") == {"v": None}


def test_quoted_and_ids_keep_their_text() -> None:
    """task_id and session_id written as numbers stay the digits written (012 is not 10)."""
    raw = load_yaml("targets:\n- task_id: 012\n- session_id: 0x1F\n  sdk_app_id: 1400000001\n",
                    keep_text=True)
    assert raw == {"targets": [{"task_id": "012"},
                               {"session_id": "0x1F", "sdk_app_id": 1400000001}]}


def test_app_ids_as_keys_keep_their_text_and_settings_stay_typed() -> None:
    """apps: keys are text (decimal checked by the config); their settings are still numbers."""
    raw = load_yaml("apps:\n  1400000001: {max_concurrent_tasks: 5}\n", keep_text=True)
    assert raw == {"apps": {"1400000001": {"max_concurrent_tasks": 5}}}


def test_without_keep_text_yaml_types_apply() -> None:
    """Other callers (the simulator's scenarios) keep ordinary YAML typing."""
    assert load_yaml("labels: {v: 1.10}\n") == {"labels": {"v": 1.1}}


def test_a_config_label_is_exported_as_written() -> None:
    """The whole path: ``ver: 1.10`` in the config is the label value "1.10"."""
    config = parse_config_text("targets:\n- task_id: t\n  labels: {ver: 1.10, beta: yes}\n")
    assert config.targets[0].labels == (("beta", "yes"), ("ver", "1.10"))


def test_a_numeric_app_key_in_the_config_is_an_sdk_app_id() -> None:
    """``apps: {1400000001: …}`` and the quoted form both name app 1400000001."""
    for key in ("1400000001", '"1400000001"'):
        config = parse_config_text(f"apps:\n  {key}: {{max_concurrent_tasks: 5}}\n")
        assert config.app(1400000001).max_concurrent_tasks == 5


def test_duplicate_keys_are_still_refused_as_text() -> None:
    """``1.10`` and ``1.1`` are two label names' worth of text, but ``a`` twice is an error."""
    with pytest.raises(YamlError, match="found duplicate key 'a'"):
        load_yaml("labels: {a: 1, a: 2}\n", keep_text=True)


FIXTURES = sorted((Path(__file__).parent / "fixtures").rglob("*.yml"))


def _outcome(load: Any, text: str, keep_text: bool) -> object:
    try:
        return load(text, keep_text)
    except YamlError as exc:
        return ("error", str(exc), exc.summary, exc.converting)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_libyaml_gives_the_pure_loaders_outcome(path: Path) -> None:
    """Every fixture loads to the same value, or fails with the same message, either loader."""
    text = path.read_text(encoding="utf-8")
    for keep_text in (False, True):
        assert _outcome(load_yaml, text, keep_text) == _outcome(yamlload._load_pure, text,
                                                                keep_text)


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a: [1, 2\n", "when: 2026-13-45\n",
                                  "n: " + "9" * 5000 + "\n", "x: &a {b: 1}\ny: {<<: *a, b: 2}\n",
                                  "targets:\n- task_id: 012\n  labels: {v: 1.10, w: 'x'}\n"])
def test_libyaml_errors_and_text_match_the_pure_loader(text: str) -> None:
    """Duplicate keys, syntax and conversion errors, and kept text, as the pure loader gives."""
    for keep_text in (False, True):
        assert _outcome(load_yaml, text, keep_text) == _outcome(yamlload._load_pure, text,
                                                                keep_text)


def test_libyaml_is_used_when_present() -> None:
    """With PyYAML built against libyaml, the fast loaders are the C one."""
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML without libyaml")
    assert all(loader is not None and issubclass(loader, yaml.CSafeLoader)
               for loader in yamlload._FAST.values())
