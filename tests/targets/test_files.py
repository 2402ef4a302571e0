"""Target files: YAML/JSON lists in the targets: schema, polled for changes on a fake clock."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from tests.conftest import build_exporter
from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import parse_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.targets.files import TargetFiles, parse_target_file

FIXTURES = Path(__file__).parents[1] / "fixtures" / "targets"
LOADED = "trtc_exporter_target_file_last_load_successful"


def copy_fixture(name: str, into: Path, as_name: str | None = None) -> Path:
    target = into / (as_name or name)
    shutil.copyfile(FIXTURES / name, target)
    return target


def write(path: Path, targets: list[dict[str, object]]) -> None:
    """Write a target file and move its mtime on, as an editor saving it later would."""
    path.write_text(json.dumps(targets) if path.suffix == ".json" else
                    "\n".join(f"- {json.dumps(t)}" for t in targets) + "\n")
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def watcher(tmp_path: Path, clock: FakeClock, interval: float = 30.0) -> TargetFiles:
    return TargetFiles((str(tmp_path / "*.yml"), str(tmp_path / "*.json")), clock,
                       "ap-guangzhou", interval)


def ids(files: TargetFiles) -> list[str]:
    return [t.task_id or t.session_id for t in files.targets()]


def maintain(exporter: Exporter) -> None:
    """One pass of the exporter's maintenance loop."""
    exporter.maintain_once()


def polled(exporter: Exporter) -> list[str]:
    return sorted(t.task_id or t.session_id for t in exporter.poller.targets())


def test_yaml_and_json_files_are_read_in_the_targets_schema(tmp_path: Path) -> None:
    """YAML and JSON target files both load, with defaults, labels and source "file"."""
    copy_fixture("team-a.yml", tmp_path)
    copy_fixture("team-b.json", tmp_path)
    files = watcher(tmp_path, FakeClock())
    assert files.refresh(force=True)
    targets = {t.task_id or t.session_id: t for t in files.targets()}
    assert sorted(targets) == ["file-cloud-1", "file-room-1", "file-task-1", "file-task-2"]
    assert {t.source for t in targets.values()} == {"file"}
    assert targets["file-task-1"].region == "ap-guangzhou"
    assert targets["file-task-2"].region == "ap-singapore"
    assert targets["file-room-1"].labels == (("team", "a"),)
    assert targets["file-cloud-1"].api == "cloud_transcription"
    assert all(state.ok for state in files.files.values())


def test_a_file_is_validated_like_the_config_with_the_path_in_the_message() -> None:
    """A file's mistakes get the config's messages, prefixed by the file path."""
    text = (FIXTURES / "broken.yml").read_text()
    with pytest.raises(ConfigError) as caught:
        parse_target_file("/etc/trtc/broken.yml", text, "ap-guangzhou")
    assert caught.value.lines == ["/etc/trtc/broken.yml[1].sdk_app_id: must be an integer, "
                                  "got string"]
    with pytest.raises(ConfigError) as caught:
        parse_config({"targets": [{"task_id": "x"}, {"sdk_app_id": "not-a-number",
                                                      "session_id": "room"}]})
    assert caught.value.lines == ["targets[1].sdk_app_id: must be an integer, got string"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.json", "[{", "/d/bad.json: not valid JSON: Expecting property name enclosed in "
                      "double quotes: line 1 column 3 (char 2)"),
    ("bad.yml", "- task_id: [", "/d/bad.yml: not valid YAML: while parsing a flow node"),
    ("map.yml", "task_id: t-1", "/d/map.yml: must be a list of targets"),
    ("dup.yml", "- task_id: a\n- task_id: a", "/d/dup.yml[1]: duplicate of /d/dup.yml[0] "
                                                 "(task a)"),
    ("deep.json", "[" * 100_000, "/d/deep.json: not valid JSON: nested too deeply"),
    ("twice.json", '[{"task_id": "a", "task_id": "b"}]',
     "/d/twice.json: not valid JSON: key 'task_id' appears twice in one object"),
    ("nan.json", '[{"task_id": "a", "sdk_app_id": NaN}]',
     "/d/nan.json: not valid JSON: NaN is not a JSON number"),
], ids=["json-syntax", "yaml-syntax", "mapping", "duplicate", "json-nested-too-deeply",
        "json-key-twice", "json-nan"])
def test_unparseable_files_get_one_line_naming_the_file(name: str, text: str,
                                                        message: str) -> None:
    """Syntax errors, wrong shapes and duplicates name the file; nothing else escapes."""
    with pytest.raises(ConfigError) as caught:
        parse_target_file(f"/d/{name}", text, "ap-guangzhou")
    assert caught.value.lines == [message]


def test_an_empty_file_is_an_empty_list(tmp_path: Path) -> None:
    """An empty target file loads successfully with no targets."""
    (tmp_path / "empty.yml").write_text("")
    files = watcher(tmp_path, FakeClock())
    files.refresh(force=True)
    assert files.targets() == []
    assert files.files[str(tmp_path / "empty.yml")].ok


def test_changes_are_picked_up_only_at_the_refresh_interval(tmp_path: Path) -> None:
    """An edit is seen at the next check, which comes refresh_interval after the last one."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": "a"}])
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=30.0)
    assert files.refresh(force=True)
    write(path, [{"task_id": "a"}, {"task_id": "b"}])
    clock.advance(29.0)
    assert not files.refresh()
    assert ids(files) == ["a"]
    clock.advance(1.0)
    assert files.refresh()
    assert ids(files) == ["a", "b"]


def test_an_unchanged_file_reports_no_change(tmp_path: Path) -> None:
    """Re-checking (and re-writing the same bytes) does not count as a change."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": "a"}])
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    files.refresh(force=True)
    clock.advance(1.0)
    assert not files.refresh()
    write(path, [{"task_id": "a"}])
    clock.advance(1.0)
    assert not files.refresh()
    assert not files.refresh(force=True)


def test_a_rewrite_with_same_size_and_mtime_is_still_seen(tmp_path: Path) -> None:
    """Content is compared, not only mtime and size: a fast same-size edit is not missed."""
    path = tmp_path / "t.yml"
    path.write_text('- task_id: "aaaa"\n')
    before = path.stat().st_mtime_ns
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    files.refresh(force=True)
    path.write_text('- task_id: "bbbb"\n')
    os.utime(path, ns=(before, before))
    clock.advance(1.0)
    assert files.refresh()
    assert ids(files) == ["bbbb"]


def test_a_broken_file_keeps_its_last_good_targets_and_is_reported(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A broken edit is logged once and marked not ok; its last good targets stay in force."""
    good, other = tmp_path / "good.yml", tmp_path / "other.json"
    write(good, [{"task_id": "a"}])
    write(other, [{"task_id": "z"}])
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    files.refresh(force=True)
    good.write_text("- task_id: [\n")
    write(other, [{"task_id": "z"}, {"task_id": "y"}])
    clock.advance(1.0)
    with caplog.at_level(logging.ERROR, logger="trtc_exporter.targets.files"):
        assert files.refresh()  # the other file changed
        clock.advance(1.0)
        files.refresh()
        files.refresh(force=True)
    assert ids(files) == ["a", "z", "y"]
    state = files.files[str(good)]
    assert (state.ok, state.targets[0].task_id) == (False, "a")
    assert files.files[str(other)].ok
    broken_lines = [r.getMessage() for r in caplog.records if "is broken" in r.getMessage()]
    assert len(broken_lines) == 1
    assert str(good) in broken_lines[0] and "keeping its last good targets" in broken_lines[0]


def test_fixing_a_broken_file_restores_it(tmp_path: Path) -> None:
    """After a broken edit, a valid edit (even back to the old content) loads again."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": "a"}])
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    files.refresh(force=True)
    path.write_text("{{{")
    clock.advance(1.0)
    files.refresh()
    assert not files.files[str(path)].ok
    write(path, [{"task_id": "a"}])
    clock.advance(1.0)
    files.refresh()
    assert files.files[str(path)].ok
    assert ids(files) == ["a"]


def test_a_file_broken_from_the_start_contributes_nothing(tmp_path: Path) -> None:
    """A file that never parsed has no targets and is reported as failed."""
    copy_fixture("broken.yml", tmp_path)
    files = watcher(tmp_path, FakeClock())
    files.refresh(force=True)
    assert files.targets() == []
    assert not files.files[str(tmp_path / "broken.yml")].ok


def test_a_deleted_file_takes_its_targets_away(tmp_path: Path) -> None:
    """When a file no longer exists its targets and its table entry are gone."""
    keep, gone = tmp_path / "keep.yml", tmp_path / "gone.yml"
    write(keep, [{"task_id": "k"}])
    write(gone, [{"task_id": "g"}])
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    files.refresh(force=True)
    gone.unlink()
    clock.advance(1.0)
    assert files.refresh()
    assert ids(files) == ["k"]
    assert list(files.files) == [str(keep)]


def test_a_new_file_matching_the_glob_is_picked_up(tmp_path: Path) -> None:
    """A file created later under a watched glob is read at the next check."""
    clock = FakeClock()
    files = watcher(tmp_path, clock, interval=1.0)
    assert not files.refresh(force=True)
    write(tmp_path / "new.yml", [{"task_id": "n"}])
    clock.advance(1.0)
    assert files.refresh()
    assert ids(files) == ["n"]


def test_forced_refresh_reparses_with_the_current_default_region(tmp_path: Path) -> None:
    """A reload re-parses unchanged files, so a new api.region reaches inheriting targets."""
    write(tmp_path / "t.yml", [{"task_id": "a"}])
    files = watcher(tmp_path, FakeClock())
    files.refresh(force=True)
    files.default_region = "ap-tokyo"
    assert files.refresh(force=True)
    assert files.targets()[0].region == "ap-tokyo"


# -- through the exporter ------------------------------------------------------------------------

def file_exporter(tmp_path: Path, clock: FakeClock, **raw: object) -> Exporter:
    return build_exporter({"target_files": [str(tmp_path / "*.yml")],
                           "target_files_refresh_interval": "5s", **raw}, clock)


def test_exporter_polls_file_targets_and_follows_edits(tmp_path: Path) -> None:
    """File targets are polled beside config targets; an edit is applied by maintenance."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": "f-1"}])
    clock = FakeClock()
    exporter = file_exporter(tmp_path, clock, targets=[{"task_id": "c-1"}])
    assert polled(exporter) == ["c-1", "f-1"]
    write(path, [{"task_id": "f-2"}])
    clock.advance(5.0)
    maintain(exporter)
    assert polled(exporter) == ["c-1", "f-2"]
    get = exporter.registry.get_sample_value
    assert get("trtc_exporter_targets", {"source": "file"}) == 1
    assert get("trtc_exporter_target_changes_total", {"change": "added", "source": "file"}) == 2
    assert get("trtc_exporter_target_changes_total", {"change": "removed", "source": "file"}) == 1


def test_broken_file_metric_is_zero_and_old_targets_stay_polled(tmp_path: Path) -> None:
    """trtc_exporter_target_file_last_load_successful{path} drops to 0; its targets stay."""
    path, other = tmp_path / "t.yml", tmp_path / "u.yml"
    write(path, [{"task_id": "f-1"}])
    write(other, [{"task_id": "u-1"}])
    clock = FakeClock()
    exporter = file_exporter(tmp_path, clock)
    get = exporter.registry.get_sample_value
    assert get(LOADED, {"path": str(path)}) == 1
    path.write_text("- sdk_app_id: x\n")
    write(other, [{"task_id": "u-2"}])
    clock.advance(5.0)
    maintain(exporter)
    assert get(LOADED, {"path": str(path)}) == 0
    assert get(LOADED, {"path": str(other)}) == 1
    assert polled(exporter) == ["f-1", "u-2"]


def test_deleted_file_drops_its_series_and_its_load_gauge(tmp_path: Path) -> None:
    """After a file is deleted its targets stop being polled and its gauge disappears."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": "f-1"}])
    clock = FakeClock()
    exporter = file_exporter(tmp_path, clock)
    path.unlink()
    clock.advance(5.0)
    maintain(exporter)
    get = exporter.registry.get_sample_value
    assert polled(exporter) == []
    assert get(LOADED, {"path": str(path)}) is None
    assert get("trtc_ai_transcription_poll_success", {
        "api": "ai_transcription", "region": "ap-guangzhou", "task_id": "f-1",
        "sdk_app_id": "", "session_id": ""}) is None


def test_duplicates_across_config_and_files_first_source_wins(tmp_path: Path) -> None:
    """A target in the config and in files is polled once; config beats files, a.yml beats b.yml."""
    write(tmp_path / "a.yml", [{"task_id": "both", "labels": {"from": "a"}},
                               {"task_id": "files", "labels": {"from": "a"}}])
    write(tmp_path / "b.yml", [{"task_id": "files", "labels": {"from": "b"}}])
    exporter = file_exporter(tmp_path, FakeClock(),
                             targets=[{"task_id": "both", "labels": {"from": "config"}}])
    targets = {t.task_id: t for t in exporter.poller.targets()}
    assert sorted(targets) == ["both", "files"]
    assert (targets["both"].source, dict(targets["both"].labels)) == ("config",
                                                                      {"from": "config"})
    assert (targets["files"].source, dict(targets["files"].labels)) == ("file", {"from": "a"})


@pytest.mark.parametrize("suffix", [".yml", ".json"])
def test_a_file_longer_than_max_targets_is_refused_before_validation(tmp_path: Path,
                                                                     suffix: str) -> None:
    """11 entries under max_targets 10 are refused whole, without a line per bad entry."""
    path = tmp_path / f"many{suffix}"
    entries = [{"task_id": 5}] * 11  # each one invalid: validating them would name each
    path.write_text(json.dumps(entries) if suffix == ".json" else
                    "".join(f"- {json.dumps(e)}\n" for e in entries))
    with pytest.raises(ConfigError) as caught:
        parse_target_file(str(path), path.read_text(), "ap-guangzhou", max_entries=10)
    assert caught.value.lines == [f"{path}: more than 10 entries (max_targets); "
                                  f"the file is refused"]


def test_errors_stop_after_a_hundred_lines_with_a_count(tmp_path: Path) -> None:
    """A file of 500 bad entries reports 100 lines and "… and 400 more problems"."""
    text = "".join("- task_id: [x]\n" for _ in range(500))
    with pytest.raises(ConfigError) as caught:
        parse_target_file("/d/bad.yml", text, "ap-guangzhou", max_entries=1000)
    assert len(caught.value.lines) == 101
    assert caught.value.lines[-1] == "… and 400 more problems"


def test_a_file_that_is_not_utf8_is_broken_not_silently_replaced(tmp_path: Path) -> None:
    """Latin-1 bytes used to become U+FFFD in task ids; now the file is refused, naming why."""
    (tmp_path / "latin.yml").write_bytes(b"- task_id: caf\xe9\n")
    files = watcher(tmp_path, FakeClock())
    files.refresh(force=True)
    state = files.files[str(tmp_path / "latin.yml")]
    assert not state.ok
    assert state.error == f"{tmp_path / 'latin.yml'}: not UTF-8 (byte offset 14); save it as UTF-8"


def poller_state(exporter: Exporter) -> dict[str, object]:
    """What the poller holds of each target: the target (with source), its stored target, due
    time and task index; and each lane's demand and stretch."""
    poller = exporter.poller
    return {"targets": {t.key: (t, t.source) for t in poller.targets()},
            "stored": {s.target.key: (s.target, s.target.source)
                       for s in exporter.store.snapshot()},
            "due": {t.key: poller.due_time(t.key) for t in poller.targets()},
            "tasks": {t.key: poller.find_task(t.api, t.task_id) for t in poller.targets()},
            "demand": {k: round(v, 9) for k, v in poller.demand.items() if v},
            "stretch": {k: round(v, 9) for k, v in poller.stretch.items()}}


def test_a_file_edit_is_applied_piecewise_as_the_whole_apply_would(tmp_path: Path) -> None:
    """Added, removed, relabelled and re-timed entries: the poller ends as after a whole apply,
    and the removed target's series leave /metrics."""
    path = tmp_path / "t.yml"
    write(path, [{"task_id": f"f-{i}"} for i in range(6)])
    clock = FakeClock()
    exporter = file_exporter(tmp_path, clock, targets=[{"task_id": "c-1"}])
    before = b"".join(exporter.exposition.render(generate_latest)).decode()
    assert 'task_id="f-0"' in before
    write(path, [{"task_id": "f-1", "labels": {"team": "x"}},
                 {"task_id": "f-2", "poll_interval": "45s"},
                 *({"task_id": f"f-{i}"} for i in range(3, 6)), {"task_id": "f-6"},
                 {"task_id": "c-1", "labels": {"team": "file"}}])  # the config's c-1 wins
    clock.advance(5.0)
    calls: list[object] = []
    exporter.poller.set_targets = calls.append  # type: ignore[method-assign,assignment]
    assert exporter.maintain_once()
    assert calls == []  # not the whole-set apply
    piecewise = poller_state(exporter)
    del exporter.poller.set_targets
    exporter._apply_targets(announce=False)  # the whole-set apply of the same sources
    assert piecewise == poller_state(exporter)
    targets = {t.task_id: t for t in exporter.poller.targets()}
    assert (dict(targets["f-1"].labels), targets["f-2"].poll_interval) == ({"team": "x"}, 45.0)
    assert targets["c-1"].source == "config"
    after = b"".join(exporter.exposition.render(generate_latest)).decode()
    assert 'task_id="f-0"' not in after and 'task_id="f-6"' in after
    assert 'task_id="f-1",team="x"' in after
    get = exporter.registry.get_sample_value
    assert get("trtc_exporter_target_changes_total", {"change": "removed", "source": "file"}) == 1
