"""Mutable facts about the running exporter that the collector and web pages show.

The poller owns target state; this holds the rest (current config, reload outcome, credential
source, shard), swapped by the CLI on start and on reload.
"""

from __future__ import annotations

import importlib
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path

from trtc_exporter import __version__
from trtc_exporter.config.model import Config


@dataclass(slots=True)
class Runtime:
    """Mutable facts about the running exporter: the config in force, its file, the reload
    outcome (``reload_success_time`` in wall-clock seconds), credential source, shard, demo mode."""

    config: Config
    config_path: str = ""
    credentials_source: str = ""
    reload_successful: bool = True
    reload_success_time: float = 0.0
    reload_error: str = ""
    shard_index: int = 0
    shard_count: int = 1
    demo: bool = False


def revision() -> str:
    """The git commit: baked into ``_build.py`` when the package was built (setup.py), else read
    from the checkout it runs from (an editable install), else 'unknown'."""
    try:
        baked = importlib.import_module("trtc_exporter._build")
    except ImportError:
        baked = None
    if baked is not None and isinstance(getattr(baked, "REVISION", None), str):
        return str(baked.REVISION)
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return "unknown"
    try:
        out = subprocess.run(  # noqa: S603 - fixed argv, no user input
            ["git", "-C", str(root), "rev-parse", "--short=12", "HEAD"],  # noqa: S607
            capture_output=True, text=True, timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


BUILD_INFO = {"version": __version__, "python_version": platform.python_version()}
