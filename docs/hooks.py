"""MkDocs hook: links from a docs page to a repository file outside docs/ become source links.

On GitHub, ``[examples/full.yml](../examples/full.yml)`` in docs/configuration.md opens the file;
in the built site MkDocs would warn that it is not a documentation page (and ``--strict`` would
fail). This hook checks that the target exists in the repository (a missing one fails the build,
like a broken page link) and points the link at ``repo_url``'s copy of it.
Hooks are a built-in MkDocs feature (https://www.mkdocs.org/user-guide/configuration/#hooks).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

LINK = re.compile(r"(\]\()([^)\s]+)(\))")
ROOT = Path(os.path.abspath(__file__)).parent.parent


def _rewrite(target: str, page_dir: Path, docs_dir: Path, repo_url: str, where: str) -> str:
    if "://" in target or target.startswith(("#", "mailto:")):
        return target
    path, _, anchor = target.partition("#")
    # normpath, not resolve(): a symlinked checkout keeps its own root.
    resolved = Path(os.path.normpath(page_dir / path))
    if resolved == docs_dir or docs_dir in resolved.parents:
        return target  # a page or image of the site: MkDocs validates it
    if ROOT not in resolved.parents:
        raise PluginError(f"{where}: link {target!r} leaves the repository")
    if not resolved.exists():
        raise PluginError(f"{where}: link {target!r}: {resolved.relative_to(ROOT)} does not exist")
    kind = "tree" if resolved.is_dir() else "blob"
    url = f"{repo_url.rstrip('/')}/{kind}/main/{resolved.relative_to(ROOT).as_posix()}"
    return f"{url}#{anchor}" if anchor else url


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Rewrite links to repository files outside docs/ (MkDocs calls this for every page)."""
    docs_dir = Path(os.path.normpath(config["docs_dir"]))
    page_dir = (docs_dir / page.file.src_uri).parent
    return LINK.sub(lambda m: m[1] + _rewrite(m[2], page_dir, docs_dir, config["repo_url"],
                                              page.file.src_uri) + m[3], markdown)
