"""Bakes the git revision into the built package (``trtc_exporter/_build.py``).

Everything else lives in pyproject.toml. A wheel carries no ``.git``, so without this an installed
exporter reported ``revision="unknown"`` in ``trtc_exporter_build_info``; the revision is read
here, at build time, from the checkout being built (``pip install .`` of a git clone).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def git_revision() -> str:
    """The checkout's commit (12 hex digits), "-dirty" when it has uncommitted changes; or
    ``TRTC_EXPORTER_REVISION`` when set (an image build, whose context has no ``.git``: the
    Dockerfile passes its ``REVISION`` build argument), if it looks like a revision."""
    given = os.environ.get("TRTC_EXPORTER_REVISION", "").strip()
    if given and given != "unknown":
        return given if re.fullmatch(r"[0-9a-f]{7,40}(-dirty)?", given) else "unknown"
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short=12", "HEAD"],  # noqa: S603, S607
                             capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",  # noqa: S603, S607
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not rev:
        return "unknown"
    return rev + ("-dirty" if dirty.strip() else "")


class BuildWithRevision(build_py):
    """build_py that also writes ``trtc_exporter/_build.py`` into the build tree."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "trtc_exporter" / "_build.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f'"""Written at build time by setup.py."""\n\nREVISION = '
                          f'{git_revision()!r}\n', encoding="utf-8")


setup(cmdclass={"build_py": BuildWithRevision})
