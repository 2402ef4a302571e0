"""Rewrite the generated regions of the docs from the code: the metrics table and the flag list.

One source each: ``trtc_exporter.metrics.SPECS`` (name, type, labels, HELP) and
``trtc_exporter.cli.build_parser()`` (flags, defaults, help). A region sits between

    <!-- BEGIN GENERATED: name (python docs/generate.py) -->
    <!-- END GENERATED: name -->

and everything between the two markers is replaced. ``python docs/generate.py`` rewrites the
files; ``--check`` only compares and exits 1 when a file is stale (tests/test_docs.py does the
same in-process).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from trtc_exporter.cli import build_parser
from trtc_exporter.metrics import CACHED, SPECS

DOCS = Path(__file__).resolve().parent
BEGIN = "<!-- BEGIN GENERATED: {name} (python docs/generate.py) -->"
END = "<!-- END GENERATED: {name} -->"
# A default the help text spells out repeats the table's default column; drop it there.
_DEFAULT_IN_HELP = re.compile(r"\s*\(default:? [^)]*\)|;\s*default \S+$")


def metrics_table() -> str:
    """The metrics table: one row per declared metric, HELP without the caching sentence."""
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for spec in SPECS:
        labels = ", ".join(spec.labels) or "—"
        meaning = spec.help.removesuffix(CACHED).replace("|", "\\|")
        rows.append(f"| `{spec.name}` | {spec.kind} | {labels} | {meaning} |")
    return "\n".join(rows)


def _flag(action: argparse.Action) -> str:
    flag = max(action.option_strings, key=len)
    if action.metavar and action.nargs != 0:
        return f"`{flag} {action.metavar}`"
    return f"`{flag}`"


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, "", argparse.SUPPRESS):
        return ""
    return f"`{action.default}`"


def _meaning(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    # Expanding %(default)s etc. the way --help does keeps the text identical to the CLI's.
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    text = _DEFAULT_IN_HELP.sub("", text)
    if action.choices:
        choices = ", ".join(f"`{choice}`" for choice in action.choices)
        text = f"{text}; one of {choices}" if text else f"one of {choices}"
    return text.replace("|", "\\|")


def flags_table() -> str:
    """The flags table: every long option of the exporter's parser, in --help order."""
    parser = build_parser()
    rows = ["| flag | default | meaning |", "|---|---|---|"]
    for action in parser._actions:
        if "--help" in action.option_strings or not action.option_strings:
            continue
        rows.append(f"| {_flag(action)} | {_default(action)} | {_meaning(parser, action)} |")
    return "\n".join(rows)


REGIONS: dict[str, dict[str, Callable[[], str]]] = {
    "metrics.md": {"metrics": metrics_table},
    "configuration.md": {"flags": flags_table},
}


def fill(text: str, name: str, content: str) -> str:
    """``text`` with the region ``name`` replaced by ``content``; ValueError without markers."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one region {begin!r} … {end!r}")
    return pattern.sub(lambda _: f"{begin}\n{content}\n{end}", text)


def rendered(page: str) -> str:
    """The page's text as it should be, every region regenerated."""
    path = DOCS / page
    text = path.read_text("utf-8")
    for name, make in REGIONS[page].items():
        try:
            text = fill(text, name, make())
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page is stale")
    args = parser.parse_args(argv)
    stale = []
    for page in REGIONS:
        path, text = DOCS / page, rendered(page)
        if path.read_text("utf-8") != text:
            stale.append(page)
            if not args.check:
                path.write_text(text, "utf-8")
    verb = "stale" if args.check else "rewrote"
    for page in stale:
        print(f"docs/{page}: {verb}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
