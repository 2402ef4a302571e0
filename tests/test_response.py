"""Parsing of API answers: every documented example, odd shapes, and arbitrary bytes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trtc_exporter.response import (
    ApiFailure,
    TaskStatus,
    bounded_code,
    is_retryable,
    parse_response,
    parse_start_time,
)

EXAMPLES = Path(__file__).parent / "fixtures" / "api_examples"
AI = "DescribeAITranscription"
CLOUD = "DescribeCloudTranscription"


@pytest.mark.parametrize(("name", "status"), [
    ("describe_idle", "Idle"), ("describe_preparing", "Preparing"),
    ("describe_inprogress", "InProgress"), ("describe_inprogress_by_session", "InProgress"),
    ("describe_stopped", "Stopped"),
])
def test_success_examples_parse(name: str, status: str) -> None:
    """Each documented success body yields its status, TaskId, RequestId and StartTime."""
    body = (EXAMPLES / f"{name}.json").read_bytes()
    result = parse_response(AI, body)
    assert isinstance(result, TaskStatus)
    raw = json.loads(body)["Response"]
    assert result.status == status
    assert result.task_id == raw["TaskId"]
    assert result.request_id == raw["RequestId"]
    assert result.session_id == raw.get("SessionId", "")
    assert result.start_time is not None


@pytest.mark.parametrize(("name", "code"), [
    ("error_task_not_exist", "FailedOperation.TaskNotExist"),
    ("error_invalid_taskid", "InvalidParameter.TaskId"),
    ("error_request_limit_exceeded", "RequestLimitExceeded"),
    ("error_auth_signature_failure", "AuthFailure.SignatureFailure"),
    ("error_auth_signature_expire", "AuthFailure.SignatureExpire"),
    ("error_internal_error", "InternalError"),
])
def test_error_examples_parse(name: str, code: str) -> None:
    """Each documented error body yields its Error.Code and RequestId."""
    body = (EXAMPLES / f"{name}.json").read_bytes()
    result = parse_response(AI, body)
    assert isinstance(result, ApiFailure)
    assert result.code == code
    assert result.request_id == json.loads(body)["Response"]["RequestId"]


def test_start_time_is_read_as_beijing_time() -> None:
    """1.0's zone-less StartTime is UTC+8: 18:00 in Beijing is 10:00 UTC."""
    assert parse_start_time("2026-11-24 18:00:00.120457") == pytest.approx(1795514400.120457)
    assert parse_start_time("2026-11-24 18:00:00") == 1795514400.0


def test_cloud_start_time_is_an_integer_epoch() -> None:
    """2.0 sends StartTime as epoch seconds; millisecond values are recognised too."""
    assert parse_start_time(1795514400) == 1795514400.0
    assert parse_start_time(1795514400123) == pytest.approx(1795514400.123)
    for empty in ("", 0, None, "garbage", True, -5):
        assert parse_start_time(empty) is None


def test_unknown_status_is_not_an_api_state() -> None:
    """A status string outside the action's set is reported as Unknown, raw value kept."""
    body = json.dumps({"Response": {"Status": "Hibernating", "RequestId": "r"}}).encode()
    result = parse_response(AI, body)
    assert isinstance(result, TaskStatus)
    assert (result.status, result.raw_status) == ("Unknown", "Hibernating")


def test_a_known_status_is_one_shared_string() -> None:
    """Two answers' "InProgress" parse to the same string object (records of 10 000 targets
    share it instead of keeping one copy each)."""
    body = json.dumps({"Response": {"Status": "InProgress", "RequestId": "r"}}).encode()
    first, second = parse_response(AI, body), parse_response(AI, body)
    assert isinstance(first, TaskStatus) and isinstance(second, TaskStatus)
    assert first.status == "InProgress" and first.status is second.status


def test_generation_specific_states() -> None:
    """Exited is a 2.0 state; in a 1.0 answer it is Unknown, and Preparing is 1.0 only."""
    exited = json.dumps({"Response": {"Status": "Exited", "StartTime": 1795514400,
                                      "TaskId": "t", "RequestId": "r"}}).encode()
    assert parse_response(CLOUD, exited).status == "Exited"  # type: ignore[union-attr]
    assert parse_response(AI, exited).status == "Unknown"  # type: ignore[union-attr]


@pytest.mark.parametrize("body", [
    b"<html>502 Bad Gateway</html>", b"", b"null", b"[]", b'{"Response": 5}',
    b'{"Response": {"RequestId": "r"}}', b'{"Response": {"Status": 7}}',
    b'{"Response": {"Error": "boom"}}', b'{"Response": {"Error": {"Code": 12}}}',
    b'{"Response": {"Error": {"Code": "a b c"}}}', b"[" * 100000,
])
def test_malformed_bodies_are_invalid_response(body: bytes) -> None:
    """Bodies that are not a well-formed envelope become InvalidResponse, not exceptions."""
    result = parse_response(AI, body)
    assert isinstance(result, ApiFailure)
    assert result.code == "InvalidResponse"


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_raise(body: bytes) -> None:
    """Any byte string parses to a result or a failure."""
    assert isinstance(parse_response(AI, body), TaskStatus | ApiFailure)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["Response", "Status", "Error", "Code", "StartTime", "TaskId",
                         "RequestId", "Message", "x"]), children, max_size=5),
    max_leaves=20)


@given(json_values)
def test_arbitrary_json_never_raises(document: object) -> None:
    """Any JSON document, including envelope-shaped ones with wrong types, never raises."""
    body = json.dumps({"Response": document}).encode()
    assert isinstance(parse_response(CLOUD, body), TaskStatus | ApiFailure)


def test_error_codes_are_bounded() -> None:
    """Known codes pass, sub-codes fold into their family, anything else is Other."""
    assert bounded_code("FailedOperation.TaskNotExist") == "FailedOperation.TaskNotExist"
    assert bounded_code("InternalError.DbError") == "InternalError"
    assert bounded_code("Timeout") == "Timeout"
    assert bounded_code("AuthFailure.SomethingNew") == "AuthFailure"
    assert bounded_code("Weird.NewCode") == "Other"


def test_retryable_codes() -> None:
    """Throttling, server faults and transport errors retry; auth and not-found do not."""
    for code in ("RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded", "InternalError",
                 "Timeout", "ConnectionError", "HTTP5xx", "InvalidResponse"):
        assert is_retryable(code), code
    for code in ("AuthFailure.SignatureFailure", "FailedOperation.TaskNotExist",
                 "InvalidParameter.TaskId"):
        assert not is_retryable(code), code


def test_an_answers_ids_that_cannot_be_labels_are_dropped() -> None:
    """A TaskId that is not valid Unicode or longer than 256 characters is not kept: it would
    become the resolved_task_id label (hcloud_exporter#12, snmp_exporter#824: invalid labels
    from upstream data failed whole scrapes)."""
    for task_id in ("a\ud800", "t" * 257):
        body = json.dumps({"Response": {"Status": "InProgress", "TaskId": task_id,
                                        "RequestId": "r"}}).encode()
        result = parse_response("DescribeAITranscription", body)
        assert isinstance(result, TaskStatus) and result.task_id == ""


@given(st.datetimes(), st.integers(0, 6), st.sampled_from(["", " ", "\t"]))
def test_start_time_fast_path_agrees_with_strptime(moment: Any, digits: int, pad: str) -> None:
    """The StartTime fast path reads every form strptime reads, to the same epoch."""
    from datetime import datetime

    from trtc_exporter.response import BEIJING

    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    if moment.year < 1000:
        return  # not the API's form: %Y gives fewer than four digits
    if digits:
        text += "." + f"{moment.microsecond:06d}"[:digits]
    expected = datetime.strptime(text, "%Y-%m-%d %H:%M:%S" + (".%f" if digits else ""))
    assert parse_start_time(pad + text + pad) == expected.replace(tzinfo=BEIJING).timestamp()


def test_start_times_are_kept_only_at_the_api_s_length() -> None:
    """A repeated StartTime is answered from the kept parses, with the same value; a string
    longer than the API's form (an odd answer, up to 1 MiB) is parsed and not kept."""
    from trtc_exporter import response

    cached = response._parse_start_cached
    text = "2026-11-24 18:00:00.654321"
    first = parse_start_time(text)
    hits = cached.cache_info().hits
    assert parse_start_time(text) == first == pytest.approx(1795514400.654321)
    assert cached.cache_info().hits == hits + 1
    size = cached.cache_info().currsize
    long_text = " " * 30 + "2026-11-24 18:00:00" + " " * 30
    assert parse_start_time(long_text) == 1795514400.0
    assert parse_start_time(long_text + "x" * 100_000) is None
    assert cached.cache_info().currsize == size


START_TEXT = st.one_of(
    st.text(max_size=48),
    st.builds(lambda d, pad, tail: pad + d.strftime("%Y-%m-%d %H:%M:%S.%f")[:tail] + pad,
              st.datetimes(), st.sampled_from(["", " ", "\t", "\u3000", "\n", "\x85"]),
              st.integers(16, 26)),
    st.integers(0, 2**40).map(str),
    st.sampled_from(["\ud800", "2026-11-24 18:00:00\udfff", " 2026-11-24 18:00:00.1 "]),
)


@given(st.lists(START_TEXT, max_size=8))
def test_kept_start_times_equal_the_uncached_parse(texts: list[str]) -> None:
    """Whatever strings come (whitespace variants, surrogates, numeric text, repeats), the
    kept parse answers exactly what the uncached parser does."""
    from trtc_exporter import response

    for text in texts + texts:
        assert parse_start_time(text) == response._parse_start_text(text)
