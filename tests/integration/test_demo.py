"""`trtc-transcription-exporter --demo` as a user runs it: every metric family within 5 s."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.harness import EXE, free_port
from trtc_exporter.exposition.webhooks import FORWARD_FAMILIES
from trtc_exporter.metrics import ALL_METRIC_NAMES, BY_NAME

pytestmark = pytest.mark.integration
NEEDS_CONFIG = {"trtc_exporter_cost_threshold_usd",  # only with apps.<id>.daily_cost_threshold_usd
                "trtc_exporter_target_file_last_load_successful",  # only with target_files
                *FORWARD_FAMILIES,  # only with webhook.forward_to
                # only with coordination.redis_url (tests/integration/test_ha.py checks them)
                "trtc_exporter_coordination_up", "trtc_exporter_coordination_members",
                "trtc_exporter_targets_owned"}


def families(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        if family.samples:
            kind = BY_NAME.get(family.name + "_total", BY_NAME.get(family.name))
            names.add(family.name + "_total" if kind and kind.kind == "counter" else family.name)
    return names


def test_demo_shows_every_family_within_five_seconds(tmp_path: Path) -> None:
    """From process start, /metrics carries every contract family in at most 5 seconds."""
    port = free_port()
    log = (tmp_path / "demo.log").open("wb")
    started = time.monotonic()
    proc = subprocess.Popen([EXE, "--demo", "--web.listen-address", f"127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        missing = set(ALL_METRIC_NAMES)
        while time.monotonic() - started < 5.0 and missing - NEEDS_CONFIG:
            try:
                text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
                missing = set(ALL_METRIC_NAMES) - families(text)
            except requests.RequestException:
                pass
            time.sleep(0.1)
        assert missing == NEEDS_CONFIG, sorted(missing)
        landing = (tmp_path / "demo.log").read_text()
        assert re.search(r"listening on http://127\.0\.0\.1:\d+/", landing)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
        log.close()
