"""Generate the Grafana dashboards JSON from code.

    python dashboards/generate.py            write dashboards/*.json
    python dashboards/generate.py --check    exit 1 if a committed JSON file is not current

Needs the "dashboards" extra: pip install -e '.[dashboards]'
(grafana-foundation-sdk==1769699379!11.6.0, which targets Grafana 11.6).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: E402
from trtc_dashboards import DASHBOARDS  # noqa: E402
from trtc_dashboards.common import finish  # noqa: E402


def render_all() -> dict[str, str]:
    """Render every dashboard to its JSON text, keyed by file name."""
    return {
        name: json.dumps(finish(build()), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
        for name, build in DASHBOARDS.items()
    }


def stale_files(directory: Path, rendered: dict[str, str]) -> list[str]:
    """Names of files that are missing, differ from the generator, or are not generated."""
    stale = [
        name
        for name, text in rendered.items()
        if not (directory / name).is_file() or (directory / name).read_text("utf-8") != text
    ]
    stale += sorted(p.name for p in directory.glob("*.json") if p.name not in rendered)
    return stale


def main(argv: list[str] | None = None) -> int:
    """Write or check the dashboards; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if any JSON is not current")
    parser.add_argument("--output-dir", type=Path, default=HERE, help="default: %(default)s")
    args = parser.parse_args(argv)
    rendered = render_all()
    if args.check:
        stale = stale_files(args.output_dir, rendered)
        for name in stale:
            print(
                f"{args.output_dir / name}: not current; run python dashboards/generate.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (args.output_dir / name).write_text(text, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
