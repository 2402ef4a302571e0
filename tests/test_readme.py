"""The README keeps telling the truth about metrics, flags and config fields."""

from __future__ import annotations

import re
from pathlib import Path

from trtc_exporter.cli import build_parser
from trtc_exporter.metrics import SPECS

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_metric_is_documented_with_its_type() -> None:
    """Each metric of the metrics module has a row in the README's metrics table."""
    for spec in SPECS:
        assert f"| `{spec.name}` | {spec.kind} |" in README, spec.name


def test_every_flag_is_documented() -> None:
    """Each long flag of the CLI appears in the README's flags table."""
    flags = {opt for action in build_parser()._actions for opt in action.option_strings
             if opt.startswith("--") and opt != "--help"}
    for flag in flags:
        assert f"`{flag}" in README, flag


def test_two_commands_come_first() -> None:
    """The run and test commands are the first code blocks of the README."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert "pip install . && trtc-transcription-exporter --demo" in blocks[0]
    assert blocks[1].strip().splitlines()[-1] == "./scripts/test"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run executes exactly the README's test command."""
    ci = (Path(__file__).parent.parent / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_no_placeholder_left() -> None:
    """No section of the README is still an unfilled placeholder."""
    assert not re.findall(r"^[A-Z_]{5,}$", README, re.M)
