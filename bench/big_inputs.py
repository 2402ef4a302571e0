"""Time and peak RSS to refuse a 100 000-entry target file and a 100 000-target config.

Each case runs in a fresh ``python`` process under ``/usr/bin/time -v`` (wall time, maximum
resident set size), for this checkout and, with ``--baseline DIR`` (another checkout's
``exporter/`` directory, e.g. a worktree of main), for that one too, printed side by side with the
ratio. Not a test: the numbers are informational (issue 15 item 16: goal, refused in well under a
second and in bounded memory, default ``max_targets`` 10 000).

    python bench/big_inputs.py [--entries 100000] [--baseline ../main/exporter]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent / "exporter"
FILE_CASE = """
from trtc_exporter.clock import FakeClock
from trtc_exporter.targets.files import TargetFiles
files = TargetFiles((PATH,), FakeClock())
files.refresh(force=True)
state = files.files[PATH]
print("refused" if not state.ok else f"accepted {len(state.targets)}")
"""
CONFIG_CASE = """
from trtc_exporter.config.model import load_config
from trtc_exporter.errors import ConfigError
try:
    load_config(PATH)
    print("accepted")
except ConfigError as exc:
    print("refused")
"""


def write_inputs(directory: Path, entries: int) -> dict[str, Path]:
    """A target file and a config of ``entries`` targets each (about 43 bytes per entry)."""
    items = "".join(f"- task_id: task-{i:06d}\n  labels: {{team: a}}\n" for i in range(entries))
    (directory / "targets.yml").write_text(items)
    indented = "".join("  " + line + "\n" for line in items.splitlines())
    (directory / "config.yml").write_text("targets:\n" + indented)
    return {"target file": directory / "targets.yml", "config": directory / "config.yml"}


def measure(tree: Path, case: str, path: Path) -> tuple[float, int, str]:
    """(wall seconds, max RSS in MiB, outcome) of one case in a fresh process."""
    code = f"PATH = {str(path)!r}\n" + case
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", code],
                          capture_output=True, text=True, env={"PYTHONPATH": str(tree)},
                          check=False)
    wall = re.search(r"Elapsed \(wall clock\) time .*: (?:(\d+):)?(\d+):([\d.]+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    if wall is None or rss is None:
        raise SystemExit(f"/usr/bin/time gave no numbers:\n{done.stderr[-2000:]}")
    hours, minutes, seconds = wall.groups()
    total = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    return total, int(rss.group(1)) // 1024, (done.stdout.strip() or done.stderr[-200:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--baseline", type=Path, help="another checkout's exporter/ directory")
    args = parser.parse_args()
    trees = {"this": HERE} | ({"baseline": args.baseline} if args.baseline else {})
    with tempfile.TemporaryDirectory(prefix="trtc-bench-") as tmp:
        inputs = write_inputs(Path(tmp), args.entries)
        print(f"{'case':<12} {'tree':<9} {'seconds':>8} {'max RSS MiB':>12}  outcome")
        for name, path in inputs.items():
            results = {}
            for label, tree in trees.items():
                case = FILE_CASE if name == "target file" else CONFIG_CASE
                results[label] = measure(tree, case, path)
                wall, rss, outcome = results[label]
                print(f"{name:<12} {label:<9} {wall:>8.2f} {rss:>12}  {outcome}")
            if len(results) == 2:
                (w1, r1, _), (w0, r0, _) = results["this"], results["baseline"]
                print(f"{name:<12} {'ratio':<9} {w1 / w0:>8.3f} {r1 / r0:>12.3f}  this/baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
