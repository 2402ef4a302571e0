"""Render the PNG previews of the docs from the demo: every bundled dashboard and the landing page.

    pip install -e '.[test,bench]'        # the e2e stack (tests/e2e) and matplotlib
    python docs/previews/render.py        # about 2 minutes; writes docs/images/

Starts the e2e stack of tests/e2e/stack.py — the exporter in ``--demo`` mode, Debian's Prometheus
(scraping every second with deploy/prometheus.yml and the bundled rules) and Alertmanager — on free
127.0.0.1 ports, lets Prometheus scrape for ``--duration`` seconds, then asks Prometheus each
panel's PromQL with Grafana's variables replaced as the e2e tests do (tests/e2e/queries.py: "All"
for $job/$instance/$region, 1m for $__rate_interval, 1h for $__range), and draws each dashboard as
its grid of panels with matplotlib into docs/images/dashboards/<dashboard>.png. The landing page is
a headless Chromium screenshot of the same exporter (docs/images/landing.png). Everything stops
when the script ends. The pictures show what Prometheus answers, drawn in Grafana's layout; they
are not Grafana screenshots.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # tests.e2e is the one definition of the stack and the variables
sys.path.insert(0, str(Path(__file__).resolve().parent))

from draw import draw_dashboard  # noqa: E402
from tests.e2e.queries import dashboard_variables, grafana_substitute  # noqa: E402
from tests.e2e.stack import Stack, require  # noqa: E402

IMAGES = ROOT / "docs" / "images"
STEP = 2  # seconds between points of a range query
CHROMIUM = "/usr/bin/chromium"
INSTANT_TYPES = {"stat", "table", "bargauge"}


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(panel.get("panels", []))  # panels of a collapsed row
    return flat


def query_panel(stack: Stack, panel: dict[str, Any], variables: dict[str, str],
                start: float, end: float) -> list[dict[str, Any]]:
    """Each target's answer: ``{"target": …, "result": [series…]}``; range or instant query."""
    answers = []
    for target in panel.get("targets", []):
        if "expr" not in target:
            continue
        expr = grafana_substitute(target["expr"], variables)
        if panel["type"] in INSTANT_TYPES or target.get("instant"):
            result = stack.api("/api/v1/query", query=expr, time=str(end))["result"]
        else:
            result = stack.api("/api/v1/query_range", query=expr, start=str(start),
                               end=str(end), step=str(STEP))["result"]
        answers.append({"target": target, "result": result})
    return answers


def _boards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text("utf-8"))
            for path in sorted((ROOT / "dashboards").glob("*.json"))}


def query_dashboards(stack: Stack, start: float, end: float) -> dict[str, Any]:
    """Dashboard file stem → the answers of each of its panels (in flattened order)."""
    data: dict[str, Any] = {"start": start, "end": end}
    for stem, board in _boards().items():
        variables = dashboard_variables(board)
        data[stem] = [query_panel(stack, panel, variables, start, end)
                      for panel in _panels(board["panels"])]
    return data


def render_dashboards(data: dict[str, Any], out: Path) -> list[Path]:
    """One PNG per dashboards/*.json, named after the file."""
    written = []
    for stem, board in _boards().items():
        target = out / f"{stem}.png"
        draw_dashboard(board["title"], _panels(board["panels"]), data[stem],
                       (data["start"], data["end"]), target)
        written.append(target)
    return written


def screenshot_landing(url: str, target: Path) -> None:
    """A 1400x900 headless Chromium screenshot of the landing page, with a throw-away profile."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", f"--user-data-dir={profile}", f"--screenshot={target}",
            "--window-size=1400,900", "--hide-scrollbars", url,
        ], check=True, capture_output=True, timeout=60)


def render_landing_only(duration: float) -> int:
    """Run the demo exporter alone for ``duration`` seconds, then screenshot its landing page."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exporter = [str(Path(sys.executable).parent / "trtc-transcription-exporter"), "--demo",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with subprocess.Popen(exporter) as proc:
        try:
            print(f"running the demo for {duration:.0f} s …", flush=True)
            time.sleep(duration)
            screenshot_landing(f"http://127.0.0.1:{port}/", IMAGES / "landing.png")
            print(f"wrote {(IMAGES / 'landing.png').relative_to(ROOT)}")
        finally:
            proc.terminate()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120,
                        help="seconds Prometheus scrapes the demo before the queries (default 120)")
    parser.add_argument("--save-data", type=Path, metavar="FILE",
                        help="also write Prometheus' answers to FILE (JSON)")
    parser.add_argument("--from-data", type=Path, metavar="FILE",
                        help="draw the dashboards from a --save-data FILE; no stack, no landing")
    parser.add_argument("--landing-only", action="store_true",
                        help="only the landing page: the demo exporter alone, no Prometheus")
    args = parser.parse_args(argv)
    if args.landing_only:
        return render_landing_only(args.duration)
    (IMAGES / "dashboards").mkdir(parents=True, exist_ok=True)
    if args.from_data:
        data = json.loads(args.from_data.read_text("utf-8"))
        for path in render_dashboards(data, IMAGES / "dashboards"):
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    # The stack runs the console script of this interpreter's environment.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    require("trtc-transcription-exporter", "prometheus", "prometheus-alertmanager")
    with ExitStack() as resources, tempfile.TemporaryDirectory() as tmp:
        stack = Stack(Path(tmp), resources)
        start = time.time()
        print(f"scraping the demo for {args.duration:.0f} s …", flush=True)
        time.sleep(args.duration)
        data = query_dashboards(stack, start, time.time())
        if args.save_data:
            args.save_data.write_text(json.dumps(data))
        for path in render_dashboards(data, IMAGES / "dashboards"):
            print(f"wrote {path.relative_to(ROOT)}")
        screenshot_landing(stack.exporter_url + "/", IMAGES / "landing.png")
        print(f"wrote {(IMAGES / 'landing.png').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
