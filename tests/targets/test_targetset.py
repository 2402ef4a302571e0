"""The merged target set and its sources: precedence, the max_targets guard, change counters."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import parse_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.target import Target
from trtc_exporter.targets.registrations import Registered, RegistrationStore
from trtc_exporter.targets.sources import TargetSources, read_bearer_token
from trtc_exporter.targets.targetset import TargetConflictError, TargetLimitError, TargetSet


def task(task_id: str, source: str = "config", **labels: str) -> Target:
    return Target(api="ai_transcription", region="ap-guangzhou", task_id=task_id,
                  labels=tuple(sorted(labels.items())), source=source)


def names(targets: list[Target]) -> list[tuple[str, str]]:
    return [(t.task_id, t.source) for t in targets]


def test_sources_merge_in_order_and_the_first_source_wins() -> None:
    """config, then files, then API; a duplicate identity keeps the first source's target."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("a", team="config")])
    ts.set_files({"t.yml": [task("a", "file", team="file"), task("b", "file")]})
    ts.register([task("b", "api"), task("c", "api")], ttl=None)
    merged = ts.merged()
    assert names(merged) == [("a", "config"), ("b", "file"), ("c", "api")]
    assert dict(merged[0].labels) == {"team": "config"}


def test_added_and_removed_are_counted_per_source() -> None:
    """Each target entering or leaving the merged set counts once, under its source."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("a")])
    ts.set_files({"t.yml": [task("f", "file")]})
    ts.merged()
    ts.set_files({"t.yml": [task("g", "file")]})
    ts.merged()
    ts.merged()  # no change, no count
    assert ts.changes[("added", "config")] == 1
    assert ts.changes[("added", "file")] == 2
    assert ts.changes[("removed", "file")] == 1
    assert ts.changes[("removed", "config")] == 0


def test_a_target_moving_between_sources_is_not_churned() -> None:
    """When config drops a target that a file also lists, it stays (now from the file)."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("a")])
    ts.set_files({"t.yml": [task("a", "file")]})
    ts.merged()
    ts.set_config([])
    assert names(ts.merged()) == [("a", "file")]
    assert ts.changes[("removed", "config")] == 0


def test_registration_is_idempotent_and_refreshes_the_ttl() -> None:
    """Registering a known target again adds nothing new and moves its expiry."""
    clock = FakeClock()
    ts = TargetSet(clock, max_targets=10)
    assert ts.register([task("a", "api")], ttl=60.0) == [task("a", "api")]
    ts.merged()
    clock.advance(30.0)
    assert ts.register([task("a", "api")], ttl=60.0) == []
    assert ts.expiry_of(task("a").key) == clock.time() + 60.0
    assert len(ts.merged()) == 1


def test_ttl_expiry_removes_and_counts() -> None:
    """A registration past its TTL is dropped and counted as expired (and as removed)."""
    clock = FakeClock()
    ts = TargetSet(clock, max_targets=10)
    ts.register([task("short", "api")], ttl=60.0)
    ts.register([task("forever", "api")], ttl=None)
    ts.merged()
    clock.advance(59.0)
    assert ts.expire() == 0
    clock.advance(1.0)
    assert ts.expire() == 1
    assert names(ts.merged()) == [("forever", "api")]
    assert ts.changes[("expired", "api")] == 1
    assert ts.changes[("removed", "api")] == 1


def test_unregister_by_id_only_touches_api_registrations() -> None:
    """DELETE by id removes a registration; config targets and unknown ids are not found."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("c")])
    ts.register([task("a", "api")], ttl=None)
    ts.merged()
    assert ts.unregister(task("a").id)
    assert not ts.unregister(task("a").id)
    assert not ts.unregister(task("c").id)
    assert names(ts.merged()) == [("c", "config")]


def test_api_registration_beyond_max_targets_is_refused_whole() -> None:
    """A batch that would pass max_targets is refused with a message and counted, not trimmed."""
    ts = TargetSet(FakeClock(), max_targets=3)
    ts.set_config([task("c")])
    ts.merged()
    with pytest.raises(TargetLimitError) as caught:
        ts.register([task(f"a{i}", "api") for i in range(3)], ttl=None)
    assert str(caught.value) == "max_targets (3) reached: 1 target, 3 new would exceed it"
    assert ts.changes[("refused", "api")] == 3
    assert names(ts.merged()) == [("c", "config")]
    ts.register([task("a0", "api"), task("a1", "api")], ttl=None)  # exactly fits
    assert ts.register([task("a0", "api")], ttl=None) == []  # known targets are not "new"
    assert len(ts.merged()) == 3


def test_file_targets_beyond_max_targets_are_refused_loudly_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """File targets past the cap are logged and counted once each, and added when room frees."""
    ts = TargetSet(FakeClock(), max_targets=2)
    ts.set_config([task("c")])
    ts.set_files({"t.yml": [task("f1", "file"), task("f2", "file"), task("f3", "file")]})
    with caplog.at_level(logging.ERROR, logger="trtc_exporter.targets.targetset"):
        assert names(ts.merged()) == [("c", "config"), ("f1", "file")]
        ts.merged()
    assert ts.changes[("refused", "file")] == 2
    assert [r.getMessage() for r in caplog.records] == [
        "max_targets (2) reached: 2 targets refused"]
    ts.set_config([])
    assert names(ts.merged()) == [("f1", "file"), ("f2", "file")]
    assert ts.changes[("refused", "file")] == 2  # f3 is still out; not counted again


def test_a_refused_target_that_leaves_and_returns_is_reported_again() -> None:
    """Refusals are remembered only while the target is still listed somewhere."""
    ts = TargetSet(FakeClock(), max_targets=1)
    ts.set_config([task("c")])
    ts.set_files({"t.yml": [task("f", "file")]})
    ts.merged()
    ts.set_files({"t.yml": []})
    ts.merged()
    ts.set_files({"t.yml": [task("f", "file")]})
    ts.merged()
    assert ts.changes[("refused", "file")] == 2


def test_lowering_max_targets_refuses_the_latest_registrations() -> None:
    """With a lower cap, config and file targets keep their place; API ones are refused."""
    ts = TargetSet(FakeClock(), max_targets=5)
    ts.set_config([task("c")])
    ts.register([task("a1", "api"), task("a2", "api")], ttl=None)
    ts.merged()
    ts.max_targets = 2
    assert names(ts.merged()) == [("c", "config"), ("a1", "api")]
    assert ts.changes[("refused", "api")] == 1
    assert ts.changes[("removed", "api")] == 1


def test_registrations_are_persisted_and_reloaded(tmp_path: Path) -> None:
    """With a store, register/unregister/expire write through and a new set reads them."""
    clock = FakeClock()
    db = str(tmp_path / "r.db")
    ts = TargetSet(clock, max_targets=10, store=RegistrationStore(db))
    ts.register([task("keep", "api"), task("drop", "api")], ttl=None)
    ts.register([task("ttl", "api")], ttl=60.0)
    ts.unregister(task("drop").id)
    again = TargetSet(clock, max_targets=10, store=RegistrationStore(db))
    assert sorted(names(again.merged())) == [("keep", "api"), ("ttl", "api")]
    assert again.expiry_of(task("ttl").key) == clock.time() + 60.0


def test_registrations_that_expired_while_down_are_not_polled(tmp_path: Path) -> None:
    """Rows whose TTL passed before a restart are expired at load, never merged."""
    clock = FakeClock()
    db = str(tmp_path / "r.db")
    store = RegistrationStore(db)
    store.upsert([Registered(task("old", "api"), 0.0, clock.time() - 1.0),
                     Registered(task("new", "api"), 0.0, clock.time() + 60.0)])
    ts = TargetSet(clock, max_targets=10, store=RegistrationStore(db))
    assert names(ts.merged()) == [("new", "api")]
    assert ts.changes[("expired", "api")] == 1
    assert [r.target.task_id for r in RegistrationStore(db).load()] == ["new"]


# -- TargetSources: config blocks, reload -------------------------------------------------------

def sources_for(raw: dict[str, object], clock: FakeClock | None = None) -> TargetSources:
    return TargetSources(parse_config(raw), clock or FakeClock())


def test_bearer_token_file_is_read_and_hidden(tmp_path: Path) -> None:
    """The token is read stripped and kept as a Secret; missing or empty files are errors."""
    path = tmp_path / "token"
    path.write_text("s3cret-token\n")
    token = read_bearer_token(str(path))
    assert token is not None and token.reveal() == "s3cret-token"
    assert "s3cret" not in repr(token) and "s3cret" not in str(token)
    path.write_text("  \n")
    with pytest.raises(ConfigError, match=r"^registration.bearer_token_file: .* is empty$"):
        read_bearer_token(str(path))
    with pytest.raises(ConfigError, match=r"^registration.bearer_token_file: cannot read "
                                          r".*: No such file or directory$"):
        read_bearer_token(str(tmp_path / "missing"))


def test_registration_disabled_opens_no_database(tmp_path: Path) -> None:
    """Without registration.enabled no database file is created."""
    sources = sources_for({"registration": {"db_path": str(tmp_path / "r.db")}})
    assert sources.registrations is None
    assert not (tmp_path / "r.db").exists()


def test_reload_applies_a_new_api_region_to_file_targets(tmp_path: Path) -> None:
    """File targets that inherit api.region follow it on reload."""
    (tmp_path / "t.yml").write_text("- task_id: f\n")
    raw: dict[str, object] = {"target_files": [str(tmp_path / "*.yml")]}
    sources = sources_for(raw)
    assert [t.region for t in sources.merged()] == ["ap-guangzhou"]
    sources.apply_config(parse_config({**raw, "api": {"region": "ap-tokyo"}}))
    assert [t.region for t in sources.merged()] == ["ap-tokyo"]


def test_reload_that_enables_registration_opens_and_persists(tmp_path: Path) -> None:
    """Turning registration on by reload opens the database, so registrations persist."""
    db = tmp_path / "r.db"
    sources = sources_for({})
    sources.apply_config(parse_config({"registration": {"enabled": True,
                                                        "db_path": str(db)}}))
    assert sources.registrations is not None
    sources.target_set.register([task("a", "api")], ttl=None)
    assert [r.target.task_id for r in RegistrationStore(str(db)).load()] == ["a"]


def test_reload_that_disables_registration_drops_registered_targets(tmp_path: Path) -> None:
    """Turning registration off removes API targets from the set but keeps them stored."""
    db = tmp_path / "r.db"
    raw = {"registration": {"enabled": True, "db_path": str(db)}}
    sources = sources_for(raw)
    sources.target_set.register([task("a", "api")], ttl=None)
    assert names(sources.merged()) == [("a", "api")]
    sources.apply_config(parse_config({}))
    assert sources.merged() == []
    assert sources.target_set.changes[("removed", "api")] == 1
    sources.apply_config(parse_config(raw))
    assert names(sources.merged()) == [("a", "api")]


def test_reload_with_an_unusable_database_changes_nothing(tmp_path: Path) -> None:
    """A newly enabled registration whose db_path is garbage fails the reload as a ConfigError."""
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    token = tmp_path / "token"
    token.write_text("t")
    sources = sources_for({"targets": [{"task_id": "c"}]})
    new = parse_config({"registration": {"enabled": True, "db_path": str(bad),
                                         "bearer_token_file": str(token)}})
    with pytest.raises(ConfigError, match=r"registration.db_path .*: file is not a database"):
        sources.apply_config(new)
    assert sources.registrations is None and sources.bearer_token is None
    assert names(sources.merged()) == [("c", "config")]


def test_reload_with_an_unreadable_token_changes_nothing(tmp_path: Path) -> None:
    """A reload naming a missing token file is refused before anything is swapped."""
    token = tmp_path / "token"
    token.write_text("old")
    raw = {"registration": {"enabled": True, "db_path": str(tmp_path / "r.db"),
                            "bearer_token_file": str(token)}}
    sources = sources_for(raw)
    moved = {"registration": {**raw["registration"], "bearer_token_file": str(tmp_path / "x")},
             "targets": [{"task_id": "new"}]}
    with pytest.raises(ConfigError):
        sources.apply_config(parse_config(moved))
    assert sources.bearer_token is not None and sources.bearer_token.reveal() == "old"
    assert sources.merged() == []


def test_maintain_reports_file_edits_and_expiries(tmp_path: Path) -> None:
    """maintain() is True when a file changed at its interval or a registration expired."""
    clock = FakeClock()
    path = tmp_path / "t.yml"
    path.write_text("- task_id: f\n")
    sources = sources_for({"target_files": [str(path)], "target_files_refresh_interval": "10s",
                           "registration": {"enabled": True,
                                            "db_path": str(tmp_path / "r.db")}}, clock)
    sources.merged()
    clock.advance(10.0)
    assert not sources.maintain()
    sources.target_set.register([task("a", "api")], ttl=15.0)
    clock.advance(15.0)
    assert sources.maintain()  # expired; the file was checked too (t=25, next at t=35)
    path.write_text("- task_id: g\n")
    clock.advance(9.0)
    assert not sources.maintain()  # the file is not due yet
    clock.advance(1.0)
    assert sources.maintain()
    assert names(sources.merged()) == [("g", "file")]


def test_rows_sort_is_total_over_every_identity_form() -> None:
    """Targets with and without sdk_app_id, tasks and sessions sort by their all-string key."""
    targets = [Target(api="ai_transcription", region="ap-guangzhou", task_id="t1"),
               Target(api="cloud_transcription", region="ap-guangzhou", task_id="t1",
                      sdk_app_id=5),
               Target(api="ai_transcription", region="ap-guangzhou", sdk_app_id=5,
                      session_id="s")]
    assert sorted(targets, key=lambda t: t.key)[0].session_id == "s"
    assert all(isinstance(part, str) for t in targets for part in t.key)


def test_the_same_task_from_two_sources_is_merged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    """Config t1 and a file's t1 with sdk_app_id ask the API one thing: the config one wins."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("t1")])
    ts.set_files({"t.yml": [Target(api="ai_transcription", region="ap-guangzhou",
                                   task_id="t1", sdk_app_id=1400000001, source="file")]})
    with caplog.at_level(logging.WARNING):
        assert names(ts.merged()) == [("t1", "config")]
    assert "a 1.0 TaskId names one task whatever sdk_app_id says" in caplog.text


def test_a_registration_joins_the_merged_set_at_once_and_counts_once() -> None:
    """register() adds new targets to the merged set; a later full merge counts nothing again."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("a")])
    ts.merged()
    assert names(ts.register([task("b", "api"), task("b", "api"), task("a", "api")], None)) == [
        ("b", "api")]
    assert ts.changes[("added", "api")] == 1
    assert names(ts.merged()) == [("a", "config"), ("b", "api")]
    assert ts.changes[("added", "api")] == 1


def test_withdraw_reports_what_left_the_merged_set() -> None:
    """A withdrawn registration leaves the set unless a config target of that identity wins."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.set_config([task("a")])
    ts.merged()
    ts.register([task("a", "api"), task("b", "api")], None)
    assert ts.withdraw(task("a").id) == []
    assert names(ts.withdraw(task("b").id) or []) == [("b", "api")]
    assert ts.withdraw(task("b").id) is None
    assert names(ts.merged()) == [("a", "config")]
    assert ts.changes[("removed", "api")] == 1


def test_one_batch_naming_a_task_with_and_without_sdk_app_id_is_refused() -> None:
    """t1 and t1 + sdk_app_id in one registration ask the API one thing: 409, nothing joins."""
    ts = TargetSet(FakeClock(), max_targets=10)
    ts.merged()
    with pytest.raises(TargetConflictError, match=r"targets\[1\]: the same task t1"):
        ts.register([task("t1", "api"), Target(api="ai_transcription", region="ap-guangzhou",
                                               task_id="t1", sdk_app_id=1400000001,
                                               source="api")], None)
    assert ts.current() == []
