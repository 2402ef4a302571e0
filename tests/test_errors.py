"""Message helpers of errors.py that are not covered through a parser."""

from __future__ import annotations

import pytest

from trtc_exporter.errors import counted


@pytest.mark.parametrize(("count", "text"), [(0, "0 targets"), (1, "1 target"),
                                              (2, "2 targets"), (10_000, "10000 targets")])
def test_counted_pluralises(count: int, text: str) -> None:
    """counted writes a count with its noun in the right number."""
    assert counted(count, "target") == text
    assert counted(count, "entry", "entries").endswith("entry" if count == 1 else "entries")
