"""Every PromQL example of the README and docs/ works against two exporters scraped by one job."""

from __future__ import annotations

import re

import pytest

from tests.e2e.stack import ROOT, Stack, has_values, wait_until

pytestmark = pytest.mark.e2e
# Seconds after the stack started: rate() over 5m needs two scrapes; the recorded per-app series
# need their group's first evaluation; the demo has a task in every status within a minute.
DATA_DEADLINE = 120.0
# A query that legitimately has no data in the demo, and why.
NO_DEMO_DATA = {
    "trtc_exporter_poll_interval_effective_seconds > on(job, instance) group_left "
    "trtc_exporter_poll_interval_seconds": "the demo's budget covers its targets: no stretch",
    "trtc_ai_transcription_status{status=\"Preparing\"} == 1\n  and ignoring(status)\n  "
    "(time() - trtc_ai_transcription_status_change_time_seconds > 600)":
    "no demo task has been Preparing for 10 minutes yet",
}


def readme_queries() -> list[str]:
    """The queries of the ```promql blocks of README.md and docs/*.md: the lines after each
    # comment."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    text = "\n".join(page.read_text("utf-8") for page in pages)
    queries = []
    for block in re.findall(r"```promql\n(.*?)```", text, re.DOTALL):
        for chunk in re.split(r"^#.*\n", block, flags=re.MULTILINE):
            if chunk.strip():
                queries.append(chunk.rstrip("\n"))
    return queries


QUERIES = readme_queries()


def test_readme_has_example_queries() -> None:
    """The documented example block was found and split into its queries."""
    assert len(QUERIES) >= 7
    assert NO_DEMO_DATA.keys() <= set(QUERIES)


@pytest.mark.parametrize("query", QUERIES)
def test_readme_query_runs_with_two_exporters(stack: Stack, query: str) -> None:
    """The query evaluates without error (no duplicate series for a match group) and, unless
    the demo cannot have such data, returns a number."""
    if query in NO_DEMO_DATA:
        wait_until(lambda: stack.query("up") and True, stack.deadline(DATA_DEADLINE), "a scrape")
        stack.query(query)  # asserts status success
        return
    wait_until(lambda: has_values(stack.query(query)), stack.deadline(DATA_DEADLINE),
               f"data for {query}")
