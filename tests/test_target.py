"""Targets: identity, the per-API rules of parse_target, labels and sharding."""

from __future__ import annotations

from typing import Any

import pytest

from trtc_exporter.errors import Errors
from trtc_exporter.generations import AI_TRANSCRIPTION, ALL_REGIONS, CLOUD_TRANSCRIPTION, REGIONS
from trtc_exporter.target import (
    MAX_ID_CHARS,
    RESERVED_LABELS,
    Target,
    id_problem,
    in_shard,
    parse_target,
)

CLOUD = {"api": CLOUD_TRANSCRIPTION, "task_id": "t", "sdk_app_id": 1400123456}


def parse(raw: object, default_region: str = "ap-guangzhou") -> tuple[Target | None, list[str]]:
    errors = Errors()
    target = parse_target(raw, "t[0]", errors, default_region)
    return target, errors.lines


def test_task_target_identity() -> None:
    """A TaskId target's key, labels, action and description come from its configured values."""
    target, lines = parse({"task_id": "abc"})
    assert lines == [] and target is not None
    assert target.key == ("ai_transcription", "ap-guangzhou", "abc", "", "")
    assert target.identity_labels == {"api": "ai_transcription", "region": "ap-guangzhou",
                                      "task_id": "abc", "sdk_app_id": "", "session_id": ""}
    assert (target.action, target.describe()) == ("DescribeAITranscription", "task abc")


def test_session_target_identity() -> None:
    """A session target is keyed by SdkAppId + SessionId and described as app/session."""
    target, _ = parse({"sdk_app_id": 1400123456, "session_id": "room-42"})
    assert target is not None
    assert target.key == ("ai_transcription", "ap-guangzhou", "", "1400123456", "room-42")
    assert target.describe() == "session 1400123456/room-42"


def test_cloud_target_identity() -> None:
    """A 2.0 target carries task_id and sdk_app_id and polls DescribeCloudTranscription."""
    target, _ = parse(CLOUD)
    assert target is not None
    assert target.key == ("cloud_transcription", "ap-guangzhou", "t", "1400123456", "")
    assert target.action == "DescribeCloudTranscription"


def test_id_is_short_stable_and_identity_based() -> None:
    """The id is 16 hex digits derived from the key only, not from labels or source."""
    a = Target(api=AI_TRANSCRIPTION, region="ap-tokyo", task_id="x")
    b = Target(api=AI_TRANSCRIPTION, region="ap-tokyo", task_id="x", source="api")
    c = Target(api=AI_TRANSCRIPTION, region="ap-singapore", task_id="x")
    assert len(a.id) == 16 and int(a.id, 16) >= 0
    assert a.id == b.id and a == b  # source does not take part in equality
    assert a.id != c.id


def test_task_ids_are_opaque() -> None:
    """TaskIds of any shape are accepted as given (never format-checked)."""
    for task_id in ["-m97l2+abc..", "v2_" + "x" * 120, "任务-1", " padded "]:
        target, lines = parse({"task_id": task_id})
        assert lines == [] and target is not None and target.task_id == task_id


@pytest.mark.parametrize("api", [AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION])
@pytest.mark.parametrize("region", sorted(ALL_REGIONS))
def test_explicit_region_must_belong_to_the_api(api: str, region: str) -> None:
    """A target's own region is accepted exactly when its API generation serves that region."""
    raw = {**CLOUD, "api": api, "region": region}
    target, lines = parse(raw)
    if region in REGIONS[api]:
        assert lines == [] and target is not None and target.region == region
    else:
        assert target is None
        assert lines == [f"t[0].region: {region!r} is not a region of {target_action(api)} "
                         f"({', '.join(REGIONS[api])}); a region not listed yet goes into "
                         "api.extra_regions"]


@pytest.mark.parametrize("region", ["ap-beijing", "ap-shanghai"])
def test_the_china_sites_2_0_regions_are_accepted(region: str) -> None:
    """2.0 targets in ap-beijing and ap-shanghai (China site's list) pass validation."""
    target, lines = parse({**CLOUD, "region": region})
    assert lines == [] and target is not None and target.region == region


def test_an_extra_region_is_accepted_for_every_generation() -> None:
    """api.extra_regions lets a target use a region no doc lists yet, for 1.0 and 2.0 alike."""
    for api in (AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION):
        errors = Errors()
        target = parse_target({**CLOUD, "api": api, "region": "ap-xyz"}, "t[0]", errors,
                              "ap-guangzhou", extra_regions=frozenset({"ap-xyz"}))
        assert errors.lines == [] and target is not None and target.region == "ap-xyz"


@pytest.mark.parametrize("api", [AI_TRANSCRIPTION, CLOUD_TRANSCRIPTION])
@pytest.mark.parametrize("region", sorted(ALL_REGIONS))
def test_inherited_region_must_belong_to_the_api(api: str, region: str) -> None:
    """A target without region inherits the default, which must also suit its API generation."""
    target, lines = parse({**CLOUD, "api": api}, default_region=region)
    if region in REGIONS[api]:
        assert lines == [] and target is not None and target.region == region
    else:
        assert lines == [f"t[0].region: api.region {region!r} is not a region of "
                         f"{target_action(api)} ({', '.join(REGIONS[api])}); set region on "
                         "this target"]


def target_action(api: str) -> str:
    return {AI_TRANSCRIPTION: "DescribeAITranscription",
            CLOUD_TRANSCRIPTION: "DescribeCloudTranscription"}[api]


def test_invalid_default_region_is_not_reported_per_target() -> None:
    """When api.region itself is invalid, targets that inherit it add no second message."""
    target, lines = parse({"task_id": "t"}, default_region="eu-mars")
    assert lines == [] and target is not None


@pytest.mark.parametrize(("raw", "message"), [
    ({}, "t[0]: needs task_id, or sdk_app_id + session_id"),
    ({"task_id": ""}, "t[0]: needs task_id, or sdk_app_id + session_id"),
    ({"task_id": None, "session_id": None}, "t[0]: needs task_id, or sdk_app_id + session_id"),
    ({"sdk_app_id": 1}, "t[0]: needs task_id, or sdk_app_id + session_id"),
    ({"task_id": "a", "session_id": "s", "sdk_app_id": 1},
     "t[0]: set either task_id or sdk_app_id + session_id, not both"),
    ({"session_id": "s"}, "t[0].sdk_app_id: is required with session_id"),
    ({"session_id": "s", "sdk_app_id": None}, "t[0].sdk_app_id: is required with session_id"),
    ({**CLOUD, "session_id": ""},
     "t[0].session_id: not supported by cloud_transcription (2.0 has no session lookup)"),
    ({**CLOUD, "sdk_app_id": None},
     "t[0]: a cloud_transcription target needs both task_id and sdk_app_id"),
    ({**CLOUD, "task_id": ""},
     "t[0]: a cloud_transcription target needs both task_id and sdk_app_id"),
])
def test_identity_rules(raw: dict[str, Any], message: str) -> None:
    """Each identity mistake (neither, both, half a session, 2.0 lacking an id) is one message."""
    target, lines = parse(raw)
    assert (target, lines) == (None, [message])


def test_task_target_may_name_its_app() -> None:
    """A 1.0 TaskId target may also carry sdk_app_id (for per-app limits and labels)."""
    target, lines = parse({"task_id": "a", "sdk_app_id": 1400123456})
    assert lines == [] and target is not None and target.sdk_app_id == 1400123456


def test_wrongly_typed_id_gives_one_message() -> None:
    """A wrongly typed sdk_app_id is reported once, not also as a missing identity."""
    assert parse({**CLOUD, "sdk_app_id": "1400123456"}) == (
        None, ["t[0].sdk_app_id: must be an integer, got string"])


def test_labels_are_sorted_by_name() -> None:
    """Labels are stored sorted by name, values exactly as given."""
    target, _ = parse({"task_id": "t", "labels": {"zone": "b", "tier": "1", "ver": "1.10"}})
    assert target is not None
    assert target.labels == (("tier", "1"), ("ver", "1.10"), ("zone", "b"))


@pytest.mark.parametrize(("value", "kind"), [(1.1, "number"), (1, "integer"), (True, "boolean"),
                                             (None, "null")])
def test_a_label_value_that_is_not_text_is_refused(value: object, kind: str) -> None:
    """A JSON number (1.10 arrives as 1.1) is never converted: the error says to quote it."""
    assert parse({"task_id": "t", "labels": {"ver": value}}) == (
        None, [f"t[0].labels.ver: label value must be a string, got {kind}; quote it"])


@pytest.mark.parametrize("name", sorted(RESERVED_LABELS))
def test_reserved_label_names_are_rejected(name: str) -> None:
    """A label the exporter sets itself cannot be configured as an extra label."""
    assert parse({"task_id": "t", "labels": {name: "x"}}) == (
        None, [f"t[0].labels.{name}: label name {name!r} is reserved by the exporter"])


@pytest.mark.parametrize("name", ["_private", "team_2", "Team", "a"])
def test_valid_label_names_are_accepted(name: str) -> None:
    """Names matching Prometheus' label grammar (and not reserved) are accepted."""
    target, lines = parse({"task_id": "t", "labels": {name: "x"}})
    assert lines == [] and target is not None and target.labels == ((name, "x"),)


@pytest.mark.parametrize("name", ["team-a", "1a", "__x", "", "a b", "team\n", "équipe"])
def test_invalid_label_names_are_rejected(name: str) -> None:
    """Names Prometheus would reject (or reserves with __) are errors, trailing newline too."""
    target, lines = parse({"task_id": "t", "labels": {name: "x"}})
    assert target is None and len(lines) == 1 and "invalid label name" in lines[0]


def test_non_mapping_entry_is_rejected() -> None:
    """A target that is not a mapping is one error and no target."""
    assert parse(["task_id", "t"]) == (None, ["t[0]: must be a mapping, got list"])


def test_misspelt_field_is_one_message() -> None:
    """An unknown field is reported alone, without a follow-up 'needs task_id'."""
    assert parse({"taskid": "t"}) == (None, ["t[0].taskid: unknown field"])


def test_source_is_recorded() -> None:
    """parse_target tags the target with where it came from."""
    errors = Errors()
    target = parse_target({"task_id": "t"}, "x", errors, "ap-tokyo", source="api")
    assert target is not None and (target.source, target.region) == ("api", "ap-tokyo")


def test_shards_partition_the_targets() -> None:
    """Every target belongs to exactly one of N shards, and to the only shard when N is 1."""
    targets = [Target(api=AI_TRANSCRIPTION, region="ap-guangzhou", task_id=f"t{i}")
               for i in range(200)]
    for target in targets:
        assert sum(in_shard(target, index, 3) for index in range(3)) == 1
        assert in_shard(target, 0, 1)
    assert all(any(in_shard(t, i, 3) for t in targets) for i in range(3))


HOSTILE = [("\x00", "the control character U+0000"), ("\x1b", "the control character U+001B"),
           ("\n", "the control character U+000A"), ("\x85", "the control character U+0085"),
           ("\u2028", "the line separator U+2028"),
           ("\u202e", "the bidirectional control U+202E"),
           ("\u202a", "the bidirectional control U+202A"),
           ("\u2066", "the bidirectional control U+2066"),
           ("\u2069", "the bidirectional control U+2069")]


@pytest.mark.parametrize(("char", "named"), HOSTILE)
@pytest.mark.parametrize(("entry", "field"), [
    ({"task_id": "a{}b"}, "task_id"),
    ({"sdk_app_id": 1400000001, "session_id": "a{}b"}, "session_id"),
    ({"task_id": "t", "labels": {"team": "a{}b"}}, "labels.team"),
])
def test_control_and_bidi_characters_are_refused_naming_the_field(
        char: str, named: str, entry: dict[str, Any], field: str) -> None:
    """NUL, other Cc characters, line separators and bidi overrides/isolates in an id or label
    value are refused with the field path and the code point."""
    raw = {k: (v.format(char) if isinstance(v, str) else
               {n: t.format(char) for n, t in v.items()} if isinstance(v, dict) else v)
           for k, v in entry.items()}
    errors = Errors()
    assert parse_target(raw, "targets[0]", errors, "ap-guangzhou") is None
    assert errors.lines == [f"targets[0].{field}: contains {named}"]


def test_id_problem_is_the_one_check_for_ids() -> None:
    """Ordinary text (spaces, accents, emoji with joiners, CJK) passes; the bound and lone
    surrogates are reported."""
    ordinary = "room 42 \u2013 caf\u00e9 \U0001F469\u200d\U0001F467 \u5b57\u5e55 \u00a0"
    assert id_problem(ordinary) is None
    assert id_problem("x" * MAX_ID_CHARS) is None
    assert id_problem("x" * (MAX_ID_CHARS + 1)) == (
        f"longer than {MAX_ID_CHARS} characters (got {MAX_ID_CHARS + 1}); TRTC ids and label "
        f"values must fit in {MAX_ID_CHARS}")
    assert id_problem("a\ud800") == "must be valid Unicode text (found a lone surrogate)"


def test_body_is_the_lookup_as_json_built_once_and_fresh_after_replace() -> None:
    """The request body is built at first use and the same bytes object afterwards; a target
    made from it by ``dataclasses.replace`` builds its own."""
    import dataclasses
    import json

    target = Target(api=AI_TRANSCRIPTION, region="ap-guangzhou", task_id="t-1")
    body = target.body
    assert json.loads(body) == {"TaskId": "t-1"}
    assert target.body is body
    other = dataclasses.replace(target, task_id="t-2")
    assert json.loads(other.body) == {"TaskId": "t-2"}
    assert target == dataclasses.replace(target) and "body" not in repr(target)


def test_targets_of_one_account_share_one_lane_string() -> None:
    """The kept lane is one string per account and action, not one per target (10 000
    targets of an account would each hold a copy of the same text)."""
    first, second = (Target(api=AI_TRANSCRIPTION, region="ap-guangzhou", task_id=task,
                            account="prod") for task in ("t-1", "t-2"))
    assert first.lane == "prod/DescribeAITranscription"
    assert first.lane is second.lane
