"""glibc's arena limit and trim: made on glibc, skipped (no call, no error) elsewhere."""

from __future__ import annotations

import ctypes

import pytest

from trtc_exporter.allocator import PROCESS, Allocator, glibc_version, load_glibc

ON_GLIBC = glibc_version() is not None
glibc_only = pytest.mark.skipif(not ON_GLIBC, reason="this machine's C library is not glibc")


def _unknown_name(name: str) -> str:
    raise ValueError(f"unrecognized configuration name {name!r}")


def test_glibc_version_is_none_where_confstr_does_not_know_the_name() -> None:
    """musl and macOS have no CS_GNU_LIBC_VERSION: confstr raises, and that means "not glibc"."""
    assert glibc_version(_unknown_name) is None


@pytest.mark.parametrize("answer", [None, "", "musl 1.2.4"])
def test_glibc_version_is_none_for_another_answer(answer: str | None) -> None:
    """Only an answer naming glibc counts as glibc."""
    assert glibc_version(lambda _name: answer) is None


def test_no_glibc_means_no_library_and_no_calls() -> None:
    """Without glibc nothing is loaded and both calls report that they did nothing."""
    assert load_glibc(None) is None
    skipped = Allocator(None)
    assert not skipped.active
    assert skipped.limit_arenas({}) is False
    assert skipped.fix_mmap_threshold({}) is False
    assert skipped.trim() is False


@glibc_only
def test_on_glibc_the_process_allocator_is_active() -> None:
    """On glibc the process's allocator reaches mallopt and malloc_trim."""
    assert PROCESS.active
    assert isinstance(load_glibc(glibc_version()), ctypes.CDLL)


@glibc_only
def test_limit_arenas_calls_mallopt_unless_the_operator_set_the_variable() -> None:
    """mallopt succeeds (returns 1) with no MALLOC_ARENA_MAX; the variable set skips the call."""
    assert PROCESS.limit_arenas({}) is True
    assert PROCESS.limit_arenas({"MALLOC_ARENA_MAX": "4"}) is False


@glibc_only
def test_fix_mmap_threshold_calls_mallopt_unless_the_operator_set_the_variable() -> None:
    """mallopt(M_MMAP_THRESHOLD) succeeds with no MALLOC_MMAP_THRESHOLD_; the variable set skips
    the call (glibc has applied the operator's value)."""
    assert PROCESS.fix_mmap_threshold({}) is True
    assert PROCESS.fix_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"}) is False


@glibc_only
def test_trim_calls_malloc_trim() -> None:
    """malloc_trim(0) runs and says so."""
    assert PROCESS.trim() is True
