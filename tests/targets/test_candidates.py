"""A target-file edit merged piecewise: the candidates' indexes, and TargetSet.update_files
against the whole merge (a property over random edits, registrations and withdrawals)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trtc_exporter.clock import FakeClock
from trtc_exporter.target import Target
from trtc_exporter.targets.candidates import Candidates, SetChange, firsts, touched
from trtc_exporter.targets.targetset import TargetConflictError, TargetLimitError, TargetSet

APP = 1400000001


def task(task_id: str, source: str = "file", app: int | None = None,
         interval: float | None = None, **labels: str) -> Target:
    return Target(api="ai_transcription", region="ap-guangzhou", task_id=task_id,
                  sdk_app_id=app, labels=tuple(sorted(labels.items())),
                  poll_interval=interval, source=source)


def state(ts: TargetSet) -> dict[tuple[str, ...], tuple[Target, str]]:
    """The merged set with each target's source (Target equality leaves the source out)."""
    return {t.key: (t, t.source) for t in ts.current()}


def test_firsts_keeps_the_first_target_of_each_lookup_and_logs_the_skipped(
        caplog: pytest.LogCaptureFixture) -> None:
    """t1 with and without sdk_app_id is one lookup: the first stays, the other is logged."""
    first, other = task("t1"), task("t1", app=APP)
    with caplog.at_level(logging.WARNING):
        index = firsts([first, other, task("t2"), task("t2")], warn=True)
    assert index == {first.lookup: first, task("t2").lookup: task("t2")}
    assert caplog.text.count("skipped") == 1  # the same identity twice is no conflict


def test_touched_names_lookups_added_removed_or_changed_in_any_field() -> None:
    """A label, an interval or a source change touches the lookup; an equal target does not."""
    before = firsts([task("a"), task("b"), task("c"), task("d")])
    after = firsts([task("a"), task("b", team="x"), task("c", interval=30.0),
                    task("d", "config"), task("e")])
    assert touched(before, after) == {task(n).lookup for n in "bcde"}
    assert touched(after, firsts([task("a")])) == {task(n).lookup for n in "bcde"}


def test_candidates_answer_one_lookup_in_merge_order() -> None:
    """config first, then files by path, then registrations: each source's first target."""
    sources = Candidates()
    sources.set_config([task("t1", "config")])
    sources.set_files({"b.yml": [task("t1", team="b")], "a.yml": [task("t1", app=APP)]})
    assert [t.source for t in sources.of(task("t1").lookup)] == ["config", "file", "file"]
    assert sources.of(task("t1").lookup)[1].sdk_app_id == APP  # a.yml sorts first
    assert sources.of(task("zz").lookup) == []


def test_an_unchanged_file_is_not_edited_and_keeps_its_index() -> None:
    """Only a path whose tuple is another object is edited; the others keep their index."""
    sources = Candidates()
    a, b = (task("a"),), (task("b"),)
    sources.set_files({"a.yml": a, "b.yml": b})
    index = sources.file_firsts("a.yml")
    assert sources.edited({"a.yml": a, "b.yml": (task("b"),)}) == ["b.yml"]
    assert sources.edited({"a.yml": a}) == ["b.yml"]  # gone
    sources.set_files({"a.yml": a, "b.yml": (task("c"),)})
    assert sources.file_firsts("a.yml") is index


def test_a_file_edit_reports_added_removed_and_changed_and_counts_them() -> None:
    """Replacing one entry, relabelling one and changing an interval is that much change."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_files({"t.yml": (task("a"), task("b"), task("c"))})
    ts.merged()
    change = ts.update_files({"t.yml": (task("a", team="x"), task("c", interval=30.0),
                                        task("d"))})
    assert change == SetChange(added=(task("d"),), removed=(task("b"),),
                               changed=(task("a", team="x"), task("c", interval=30.0)))
    assert {k: t for k, (t, _) in state(ts).items()} == {
        t.key: t for t in (task("a", team="x"), task("c", interval=30.0), task("d"))}
    assert ts.changes == Counter({("added", "file"): 4, ("removed", "file"): 1})
    assert not ts.update_files({"t.yml": (task("a", team="x"), task("c", interval=30.0),
                                          task("d"))})  # equal content: nothing


def test_a_removed_file_target_gives_way_to_the_next_source() -> None:
    """Without the file's entry, a later file's or the registration's target takes the place."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_files({"a.yml": (task("t1", team="a"),), "b.yml": (task("t1", team="b"),)})
    ts.merged()
    ts.register([task("t2", "api")], None)
    ts.update_files({"a.yml": (task("t2"),), "b.yml": (task("t1", team="b"),)})
    assert state(ts) == {task("t1").key: (task("t1", team="b"), "file"),
                         task("t2").key: (task("t2"), "file")}
    change = ts.update_files({"b.yml": (task("t1", team="b"),)})
    assert change == SetChange(changed=(task("t2", "api"),))  # same key, now the registration
    assert state(ts)[task("t2").key][1] == "api"


def test_a_file_target_with_sdk_app_id_never_joins_beside_the_same_task_without() -> None:
    """t1 in the config and t1 + sdk_app_id in a file are one task: the config's is kept."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("t1", "config")])
    ts.merged()
    assert not ts.update_files({"t.yml": (task("t1", app=APP),)})
    assert state(ts) == {task("t1").key: (task("t1", "config"), "config")}
    with pytest.raises(TargetConflictError):  # the index registrations are checked against
        ts.register([task("t1", "api", app=APP)], None)


def test_reaching_max_targets_falls_back_to_the_whole_merge() -> None:
    """A change past the cap is not applied piecewise: the whole merge refuses as before."""
    ts = TargetSet(FakeClock(), max_targets=2)
    ts.set_files({"t.yml": (task("a"),)})
    ts.merged()
    files = {"t.yml": (task("a"), task("b"), task("c"))}
    assert ts.update_files(files) == SetChange(whole=True)
    assert [t.task_id for t in ts.merged()] == ["a", "b"]
    assert ts.has_refusals
    assert ts.update_files({"t.yml": (task("b"), task("c"))}).whole  # refusals wait


# -- the property: piecewise equals whole ----------------------------------------------------

IDS = ("t0", "t1", "t2", "t3", "t4")
PATHS = ("a.yml", "b.yml", "c.yml")


def variants(source: str) -> st.SearchStrategy[Target]:
    return st.builds(lambda name, app, team, interval: task(
        name, source, app, interval, **({} if team is None else {"team": team})),
        st.sampled_from(IDS), st.sampled_from([None, APP]), st.sampled_from([None, "x", "y"]),
        st.sampled_from([None, 30.0]))


def registration(name: str, app: bool) -> Target:
    """Registrations of one identity are always the same target (a re-registration with other
    labels is not applied until a whole merge, either way)."""
    return task(name, "api", APP if app else None)


OPS = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(PATHS),
              st.none() | st.lists(variants("file"), max_size=5)),
    st.tuples(st.just("register"), st.lists(st.tuples(st.sampled_from(IDS), st.booleans()),
                                            min_size=1, max_size=2)),
    st.tuples(st.just("withdraw"), st.tuples(st.sampled_from(IDS), st.booleans())),
)


def attempt(ts: TargetSet, targets: list[Target]) -> object:
    try:
        return [t.key for t in ts.register(targets, None)]
    except (TargetConflictError, TargetLimitError) as exc:
        return type(exc)


def edit(files: dict[str, tuple[Target, ...]], path: str, content: list[Target] | None) -> None:
    if content is None:
        files.pop(path, None)
    else:
        files[path] = tuple(content)


def apply_files(whole: TargetSet, piecewise: TargetSet,
                files: Mapping[str, Sequence[Target]]) -> None:
    whole.set_files(files)
    whole.merged()
    if piecewise.update_files(files).whole:
        piecewise.merged()


@settings(max_examples=300, deadline=None)
@given(config=st.lists(variants("config"), max_size=3), cap=st.integers(2, 8),
       ops=st.lists(OPS, max_size=10))
def test_piecewise_file_edits_give_exactly_the_whole_merge(
        config: list[Target], cap: int, ops: list[tuple[object, ...]]) -> None:
    """After any edits, registrations and withdrawals, the set, sources and counts agree."""
    whole, piecewise = TargetSet(FakeClock(), cap), TargetSet(FakeClock(), cap)
    files: dict[str, tuple[Target, ...]] = {}
    for ts in (whole, piecewise):
        ts.set_config(config)
        ts.merged()
    for op in ops:
        if op[0] == "file":
            edit(files, op[1], op[2])  # type: ignore[arg-type]
            apply_files(whole, piecewise, dict(files))
        elif op[0] == "register":
            batch = [registration(*pair) for pair in op[1]]  # type: ignore[attr-defined]
            assert attempt(whole, batch) == attempt(piecewise, batch)
        else:
            gone = registration(*op[1]).id  # type: ignore[misc]
            for ts in (whole, piecewise):
                if ts.withdraw(gone) is not None and ts.has_refusals:
                    ts.merged()  # what the exporter does
        assert state(piecewise) == state(whole)
        assert piecewise.changes == whole.changes
