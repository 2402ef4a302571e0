"""The pre-rendered task section is byte for byte client_python's rendering, and renders only
what changed."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from trtc_exporter.exposition.families import states_of
from trtc_exporter.exposition.fragments import TaskFragments, escape_value, render_target
from trtc_exporter.exposition.tasks import TaskCollector
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import Target

NOW = 1_795_600_000.25
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
NASTY = st.sampled_from(["", "a\\b", 'say "hi"', "line\nbreak", "ünïcödé ☃", "\\n", "x"])
VALUE = st.one_of(TEXT, NASTY)
TIME = st.one_of(st.none(), st.floats(0, 2e9), st.sampled_from([0.0, 1e-7, 1795514400.0]))


@st.composite
def states(draw: st.DrawFn) -> TargetState:
    """A target with awkward label values in any status, fresh, stale or never answered."""
    api = draw(st.sampled_from(["ai_transcription", "cloud_transcription"]))
    names = draw(st.lists(st.sampled_from(["team", "tier", "z_last", "a_first"]), unique=True))
    target = Target(api, draw(VALUE), task_id=draw(VALUE), session_id=draw(VALUE),
                    sdk_app_id=draw(st.one_of(st.none(), st.integers(1, 2**40))),
                    labels=tuple(sorted((n, draw(VALUE)) for n in names)))
    status = draw(st.sampled_from(states_of(target.action)))
    return TargetState(target, status=status, start_time=draw(TIME),
                       resolved_task_id=draw(VALUE), last_success=draw(st.floats(0, 2e9)),
                       last_answer=draw(st.sampled_from([0.0, NOW - 5, NOW - 500])),
                       poll_success=draw(st.sampled_from([None, True, False])),
                       status_change_time=draw(TIME),
                       interval=draw(st.sampled_from([0.0, 10.0, 1000.0])))


def unique(items: list[TargetState]) -> list[TargetState]:
    return list({s.target.key: s for s in items}.values())


def reference(items: list[TargetState], openmetrics: bool) -> bytes:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(TaskCollector(lambda: items, lambda: NOW))
    text = (generate_openmetrics if openmetrics else generate_latest)(registry)
    return text.removesuffix(b"# EOF\n")


def fast(items: list[TargetState], openmetrics: bool) -> bytes:
    return b"".join(TaskFragments(lambda: items, lambda: NOW).render(openmetrics))


@settings(max_examples=150, deadline=None)
@given(st.lists(states(), max_size=6).map(unique))
def test_same_bytes_as_client_python(items: list[TargetState]) -> None:
    """Text and OpenMetrics task sections equal client_python's encoding of TaskCollector."""
    for openmetrics in (False, True):
        assert fast(items, openmetrics) == reference(items, openmetrics)


@settings(max_examples=60, deadline=None)
@given(st.lists(states(), min_size=1, max_size=4).map(unique))
def test_client_python_parsers_read_back_the_label_values(items: list[TargetState]) -> None:
    """Both of client_python's parsers read every escaped label value back unchanged."""
    sent = {s.target.task_id for s in items}
    for text, parse in ((fast(items, False), parse_text),
                        (fast(items, True) + b"# EOF\n", parse_openmetrics)):
        families = {f.name: f for f in parse(text.decode())}
        status = families["trtc_ai_transcription_status"]
        assert {s.labels["task_id"] for s in status.samples} == sent
        assert len(status.samples) == sum(len(states_of(s.target.action)) for s in items)


def test_escape_value_matches_the_exposition_rules() -> None:
    """Backslash, newline and double quote are escaped; other characters pass unchanged."""
    assert escape_value('a\\b\n"c"☃') == 'a\\\\b\\n\\"c\\"☃'


def _one(task: str, **changes: object) -> TargetState:
    return replace(TargetState(Target("ai_transcription", "ap-guangzhou", task_id=task)),
                   **changes)  # type: ignore[arg-type]


def test_unchanged_targets_are_not_rendered_again() -> None:
    """A second scrape reuses every fragment; a new state renders that target alone."""
    items = [_one(f"t-{i}", status="Idle", last_answer=NOW - 1, interval=10.0) for i in range(5)]
    fragments = TaskFragments(lambda: items, lambda: NOW)
    fragments.render(False)
    fragments.render(True)
    assert fragments.rendered == 5
    items[2] = replace(items[2], status="InProgress", start_time=NOW - 60)
    assert b'task_id="t-2"} 60.0' in b"".join(fragments.render(False))
    assert fragments.rendered == 6


def test_a_state_turning_stale_is_rendered_as_unknown() -> None:
    """The shown status moves to Unknown when the clock passes three intervals."""
    now = [NOW]
    items = [_one("t-1", status="Idle", last_answer=NOW, interval=10.0)]
    fragments = TaskFragments(lambda: items, lambda: now[0])
    assert b'status="Idle",task_id="t-1"} 1.0' in b"".join(fragments.render(False))
    now[0] += 31
    assert b'status="Unknown",task_id="t-1"} 1.0' in b"".join(fragments.render(False))
    assert fragments.rendered == 2


def test_a_new_label_name_renders_every_target_again() -> None:
    """Every line carries every operator label name, so a new one re-renders all targets."""
    items = [_one("t-1"), _one("t-2")]
    fragments = TaskFragments(lambda: items, lambda: NOW)
    fragments.render(False)
    items.append(replace(_one("t-3"), target=Target("ai_transcription", "ap-guangzhou",
                                                    task_id="t-3", labels=(("team", "a"),))))
    text = b"".join(fragments.render(False))
    assert b'session_id="",task_id="t-1",team=""} ' in text
    assert fragments.rendered == 5


def test_a_target_stores_its_label_set_once_and_shares_names_and_values() -> None:
    """The label set is one object in every family of a target; 0/1 values are shared by all."""
    first, second = (render_target(_one(task, status="InProgress", start_time=NOW - 60,
                                        status_change_time=NOW - 60,
                                        poll_success=True), "InProgress", ())
                     for task in ("t-1", "t-2"))
    labels = first.running
    assert labels is not None and labels.startswith(b'{api="ai_transcription"')
    assert sum(piece is labels for piece in first.fragment) == 4  # start, change, last, success
    shared = {id(piece) for piece in first.fragment} & {id(piece) for piece in second.fragment}
    assert {piece for piece in first.fragment if id(piece) in shared} >= {
        b"Idle", b"trtc_ai_transcription_poll_success", b"1.0\n"}
