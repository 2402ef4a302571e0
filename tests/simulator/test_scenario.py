"""Scenario files: the example loads, and each one-mistake file gives its exact error line."""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.durations import parse_seconds
from trtc_exporter.simulator import (
    Api,
    FaultKind,
    ScenarioError,
    SimulatorAPI,
    load_scenario,
    parse_scenario,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "simulator"
INVALID = sorted(FIXTURES.glob("invalid-*.yml"))


def _example() -> Path:
    return Path(str(resources.files("trtc_exporter.simulator") / "example_scenario.yml"))


def test_example_scenario_shipped_with_the_package_loads() -> None:
    """The documented example file parses, with every section taking effect."""
    scenario = load_scenario(_example())
    assert scenario.seed == 42
    assert [c.secret_id for c in scenario.credentials][1] == "AKIDexampleTemporary000000000000002"
    assert repr(scenario.credentials[1].token) == "<secret>"
    assert scenario.rate_limits == {"StartAITranscription": 20}
    assert scenario.quotas == {1400000003: 10}
    assert dict(scenario.created_phases[Api.AI])["in_progress"] == 36000
    looping, cloud = scenario.tasks
    assert looping.phases == (("idle", 5), ("preparing", 5), ("in_progress", 60), ("stopped", 10))
    assert (looping.repeat_after, looping.start_offset, looping.session_id) == (
        10,
        -20,
        "room-1-subtitles",
    )
    assert cloud.api is Api.CLOUD and math.isinf(dict(cloud.phases)["in_progress"])
    assert cloud.faults[0].task_id == "example-cloud-task"
    assert [f.kind for f in scenario.faults] == [FaultKind.HTTP_ERROR, FaultKind.RATE_LIMIT_DROP]
    assert scenario.faults[1].after == 60 and scenario.faults[1].duration == 30


def test_example_scenario_drives_a_simulator() -> None:
    """A simulator built from the example knows its tasks and applies the delayed limit drop."""
    clock = FakeClock(1_795_514_400.0)
    api = SimulatorAPI(load_scenario(_example()), clock)
    truth = {task.task_id: view for task, view in api.store.snapshot(clock.time())}
    assert set(truth) == {"example-looping-task", "example-cloud-task"}
    looping = truth["example-looping-task"]
    assert looping is not None and looping.status == "InProgress"  # 20 s into its cycle
    assert api.limit_for("DescribeAITranscription") == 20
    clock.advance(61)
    assert api.limit_for("DescribeAITranscription") == 10
    assert api.limit_for("DescribeCloudTranscription") == 20


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_scenario_reports_its_one_mistake_exactly(path: Path) -> None:
    """Each invalid-*.yml holds one mistake; the loader reports exactly the line in its header."""
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    assert info.value.errors == [expected]


def test_all_problems_are_reported_at_once() -> None:
    """Several mistakes give one error line each, in one exception."""
    with pytest.raises(ScenarioError) as info:
        parse_scenario({
            "credentials": [{"secret_id": "a", "secret_key": "b"}], "seed": "x",
            "tasks": [{"task_id": "t", "sdk_app_id": 0}], "faults": "none",
        })  # fmt: skip
    assert info.value.errors == [
        "seed: must be an integer, got 'x'",
        "tasks[0].sdk_app_id: must be an integer >= 1, got 0",
        "faults: must be a list, got str",
    ]
    assert str(info.value).count("\n") == 2


def test_missing_file_and_broken_yaml_name_the_file(tmp_path: Path) -> None:
    """A file that cannot be read or parsed is reported with its path."""
    with pytest.raises(ScenarioError, match=r"nope\.yml: cannot read"):
        load_scenario(tmp_path / "nope.yml")
    broken = tmp_path / "broken.yml"
    broken.write_text("credentials: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"broken\.yml: invalid YAML"):
        load_scenario(broken)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(5, 5.0), (0.25, 0.25), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), ("1d", 86400.0)],
)
def test_durations_accept_seconds_and_prometheus_style_strings(
    text: object, seconds: float
) -> None:
    """Durations are plain seconds or strings like 1m30s and 500ms."""
    assert parse_seconds(text, allow_forever=False) == (seconds, None)


@pytest.mark.parametrize("text", ["1.5s", "5 s", "-1s", "1s1m", ""])
def test_duration_strings_follow_prometheus_grammar(text: str) -> None:
    """Scenario strings use the exporter's one grammar: no fractions, spaces or signs."""
    seconds, problem = parse_seconds(text, allow_forever=False)
    assert seconds is None and problem is not None and repr(text) in problem


def test_forever_only_where_allowed() -> None:
    """'forever' is infinite for phases and refused where a finite time is needed."""
    assert parse_seconds("forever", allow_forever=True) == (math.inf, None)
    assert parse_seconds("forever", allow_forever=False)[0] is None
    assert parse_seconds(True, allow_forever=True)[0] is None
    assert parse_seconds(-1, allow_forever=True)[0] is None
