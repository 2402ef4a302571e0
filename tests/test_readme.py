"""The README stays a short front page: the two commands first, working links, no placeholders.

The reference (metrics table, flags, config fields) lives in docs/; tests/test_docs.py keeps it
true to the code.
"""

from __future__ import annotations

import re
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
MAX_LINES = 200


def test_two_commands_come_first() -> None:
    """The run and test commands are the first code blocks of the README."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    assert "pip install . && trtc-transcription-exporter --demo" in blocks[0]
    assert blocks[1].strip().splitlines()[-1] == "./scripts/test"


def test_ci_runs_the_readme_test_command() -> None:
    """.ci/run executes exactly the README's test command."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_no_placeholder_left() -> None:
    """No section of the README is still an unfilled placeholder."""
    assert not re.findall(r"^[A-Z_]{5,}$", README, re.M)


def test_readme_stays_short() -> None:
    """The README is a front page of at most 200 lines; the reference belongs in docs/."""
    assert len(README.splitlines()) <= MAX_LINES


def test_relative_links_and_images_resolve() -> None:
    """Every relative link or image of the README names an existing file (and heading)."""
    links = re.findall(r"\]\(([^)\s]+)\)", README)
    relative = [link for link in links if "://" not in link and not link.startswith("#")]
    assert relative
    for link in relative:
        path, _, anchor = link.partition("#")
        target = ROOT / path
        assert target.exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text("utf-8"), re.M)
            assert anchor in {slugify(h, "-") for h in headings}, link


def test_readme_shows_the_landing_page_and_a_dashboard() -> None:
    """The README embeds the landing-page screenshot and a dashboard preview."""
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert "docs/images/landing.png" in images
    assert any(image.startswith("docs/images/dashboards/") for image in images)
