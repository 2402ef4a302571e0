"""The one strict JSON loader: duplicate keys and non-standard constants are refused."""

from __future__ import annotations

import json

import pytest

from trtc_exporter.jsonload import JsonError, load_json


def test_plain_json_loads_as_json_loads_would() -> None:
    """Objects, lists, numbers, strings and null come back as the standard library reads them."""
    text = '{"targets": [{"task_id": "t", "sdk_app_id": 1400000001}], "ttl": null, "x": 1.5}'
    assert load_json(text) == json.loads(text)
    assert load_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize(("text", "message"), [
    ('{"task_id": "a", "task_id": "b"}', "key 'task_id' appears twice in one object"),
    ('[{"labels": {"a": "1", "a": "2"}}]', "key 'a' appears twice in one object"),
    ('{"n": NaN}', "NaN is not a JSON number"),
    ('[Infinity]', "Infinity is not a JSON number"),
    ('[-Infinity]', "-Infinity is not a JSON number"),
], ids=["duplicate", "nested-duplicate", "nan", "infinity", "minus-infinity"])
def test_ambiguous_or_non_standard_json_is_refused(text: str, message: str) -> None:
    """A key given twice (which one counts?) and NaN/Infinity (not JSON) raise JsonError."""
    with pytest.raises(JsonError) as caught:
        load_json(text)
    assert str(caught.value) == message


def test_a_huge_duplicate_key_is_shown_shortened() -> None:
    """The message stays one short line whatever the key."""
    with pytest.raises(JsonError) as caught:
        key = "k" * 5000
        load_json(f'{{"{key}": 1, "{key}": 2}}')
    assert len(str(caught.value)) < 200


def test_syntax_errors_stay_json_decode_errors() -> None:
    """Callers keep their own wording of syntax errors (line and column)."""
    with pytest.raises(json.JSONDecodeError):
        load_json("[{")
