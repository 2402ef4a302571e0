"""The docs: generated regions match the code, `mkdocs build --strict` passes and can fail, and
the configs of the webhook recipe are valid."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from trtc_exporter.cli import build_parser
from trtc_exporter.config.model import parse_config
from trtc_exporter.metrics import SPECS
from trtc_exporter.simulator.scenario import parse_scenario

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load("generate")
hooks = _load("hooks")


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)], capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("page", sorted(generate.REGIONS))
def test_generated_regions_are_current(page: str) -> None:
    """Each generated region equals what docs/generate.py makes from the code now."""
    assert (DOCS / page).read_text("utf-8") == generate.rendered(page), (
        f"docs/{page} is stale: run python docs/generate.py")


def test_every_metric_is_documented_with_its_type() -> None:
    """Each metric of the metrics module has a row with its type in docs/metrics.md."""
    text = (DOCS / "metrics.md").read_text("utf-8")
    for spec in SPECS:
        assert f"| `{spec.name}` | {spec.kind} |" in text, spec.name


def test_every_flag_is_documented() -> None:
    """Each long flag of the CLI appears in the flags table of docs/configuration.md."""
    text = (DOCS / "configuration.md").read_text("utf-8")
    flags = {opt for action in build_parser()._actions for opt in action.option_strings
             if opt.startswith("--") and opt != "--help"}
    assert flags
    for flag in flags:
        assert f"| `{flag}" in text, flag


def test_fill_replaces_only_the_region() -> None:
    """fill() swaps the text between a region's markers and keeps everything around them."""
    begin, end = generate.BEGIN.format(name="x"), generate.END.format(name="x")
    text = f"before\n{begin}\nold\n{end}\nafter\n"
    assert generate.fill(text, "x", "new") == f"before\n{begin}\nnew\n{end}\nafter\n"


def test_fill_refuses_a_page_without_its_markers() -> None:
    """A page that lost its markers is an error, not a silently skipped region."""
    with pytest.raises(ValueError, match="expected one region"):
        generate.fill("no markers here\n", "metrics", "table")


def test_hook_points_repository_links_at_the_source() -> None:
    """A docs link to a repository file outside docs/ becomes a repo_url link to that file."""
    url = hooks._rewrite("../examples/full.yml#L3", DOCS, DOCS, "https://example.org/r/",
                         "configuration.md")
    assert url == "https://example.org/r/blob/main/examples/full.yml#L3"
    assert hooks._rewrite("budget.md#capacity", DOCS, DOCS, "u", "x.md") == "budget.md#capacity"


def test_hook_fails_on_a_missing_repository_file() -> None:
    """A link to a repository file that does not exist fails the build."""
    with pytest.raises(hooks.PluginError, match="does not exist"):
        hooks._rewrite("../examples/nope.yml", DOCS, DOCS, "u", "configuration.md")


def test_mkdocs_build_is_strict_clean(tmp_path: Path) -> None:
    """`mkdocs build --strict` of the docs succeeds (no broken link, no page left out)."""
    result = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "metrics" / "index.html").is_file()


def test_mkdocs_build_fails_on_a_broken_link(tmp_path: Path) -> None:
    """The same build of a copy with one link to a missing page fails."""
    for entry in ROOT.iterdir():
        if entry.name not in {"docs", ".git", ".venv", "site"}:
            (tmp_path / entry.name).symlink_to(entry)
    shutil.copytree(DOCS, tmp_path / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    with (tmp_path / "docs" / "budget.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [nowhere](no-such-page.md).\n")
    result = _build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr


def test_the_webhook_recipe_configs_are_valid(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The scenario and exporter config of docs/webhooks.md's simulator recipe parse, and the
    scenario signs with the key the exporter reads (the recipe itself was run by hand)."""
    page = (ROOT / "docs" / "webhooks.md").read_text(encoding="utf-8")
    section = page[page.index("## Try it with the simulator"):
                   page.index("## What a callback changes")]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    key = re.search(r"printf '(\w+)\\n' > callback-key", blocks[0][1])
    assert key is not None
    scenario = parse_scenario(yaml.safe_load(blocks[1][1]))
    assert scenario.callbacks is not None
    assert scenario.callbacks.keys[1400000001].reveal() == key.group(1)
    (tmp_path / "callback-key").write_text(key.group(1) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    config = parse_config(yaml.safe_load(blocks[2][1]))
    assert config.webhook.key_file == "callback-key" and not config.targets
