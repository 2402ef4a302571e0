"""glibc's allocator told to keep fewer arenas and to give freed pages back (issue 16, goal 3).

Why: under 20 concurrent scrapers at 10 000 targets the Python heap stays flat (tracemalloc) while
the process's RSS kept rising, by tens of MB per minute. Every /metrics rendering joins and
compresses a few MB of text, and re-renders the fragments of targets whose state changed, in
whichever HTTP worker thread serves it; glibc gives each thread its own arena (up to 8 per core)
and returns freed memory in the middle of a heap to the system only on ``malloc_trim``. So RSS
became the high-water mark of every arena, not the memory in use. Two calls fix it:

- ``mallopt(M_ARENA_MAX, 2)`` at start-up (before the threads exist): the threads share two
  arenas. The GIL serialises almost all allocation already, so there is little contention to
  lose. An operator's ``MALLOC_ARENA_MAX`` environment variable wins (we do not override it).
- ``mallopt(M_MMAP_THRESHOLD, 128 KiB)`` at start-up: glibc's default threshold is dynamic,
  raised to the size of every mmapped block that is freed (up to 32 MiB), after which blocks
  of that size (a rendering's 10 000-entry dicts and lists, a whole text body) come from the
  heap and leave holes there. Fixed, every block of 128 KiB or more is mmapped and given back
  whole when freed: 1-1.5 MB less RSS at 10 000 targets, ready and under 20 scrapers
  (``bench/memory.py``, 2026-11-30). An operator's ``MALLOC_MMAP_THRESHOLD_`` wins.
- ``malloc_trim(0)`` after each shared /metrics rendering: the pages that rendering freed go
  back to the system (``madvise(MADV_DONTNEED)`` on free pages of every arena, glibc ≥ 2.8;
  ``man 3 malloc_trim``). It costs a walk of the free lists, about a millisecond, against about
  0.1 s for the rendering.

Elsewhere (musl, macOS, Windows) neither function exists and both calls do nothing: those
allocators have their own policies, and ``mallopt``'s parameter numbers are glibc's alone.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping
from typing import Any

M_ARENA_MAX = -8  # <malloc.h>: the parameter number of the arena limit in glibc's mallopt
ARENAS = 2
M_MMAP_THRESHOLD = -3  # <malloc.h>: the mmap threshold's parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value (bytes), kept instead of raised on free


def glibc_version(confstr: Callable[[str], str | None] = os.confstr) -> str | None:
    """The running glibc's version (``"glibc 2.36"``), None for any other C library (musl,
    macOS and Windows have no ``CS_GNU_LIBC_VERSION``)."""
    try:
        value = confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # the name is unknown to this platform's confstr
        return None
    return value if value and value.startswith("glibc") else None


def load_glibc(version: str | None) -> Any | None:
    """The C library already linked into this process when it is glibc, else None."""
    if version is None:
        return None
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: the libc Python runs on
    except OSError:
        return None
    if not (hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim")):
        return None
    return libc


class Allocator:
    """The calls above on ``libc`` (a ctypes library of glibc), or no-ops when it is None.

    Each method returns whether the call was made (for tests and the log)."""

    def __init__(self, libc: Any | None) -> None:
        self._libc = libc

    @classmethod
    def of_process(cls) -> Allocator:
        """The allocator of this process: glibc's functions when glibc is the C library."""
        return cls(load_glibc(glibc_version()))

    @property
    def active(self) -> bool:
        """True when the calls reach glibc."""
        return self._libc is not None

    def limit_arenas(self, environ: Mapping[str, str] = os.environ) -> bool:
        """``mallopt(M_ARENA_MAX, ARENAS)`` unless ``MALLOC_ARENA_MAX`` is set (the operator's
        choice); only arenas created afterwards are affected, so call it before threads."""
        if self._libc is None or "MALLOC_ARENA_MAX" in environ:
            return False
        return bool(self._libc.mallopt(ctypes.c_int(M_ARENA_MAX), ctypes.c_int(ARENAS)))

    def fix_mmap_threshold(self, environ: Mapping[str, str] = os.environ) -> bool:
        """``mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)`` unless ``MALLOC_MMAP_THRESHOLD_`` is set
        (glibc reads that variable itself); setting it also ends glibc's dynamic threshold."""
        if self._libc is None or "MALLOC_MMAP_THRESHOLD_" in environ:
            return False
        return bool(self._libc.mallopt(ctypes.c_int(M_MMAP_THRESHOLD),
                                       ctypes.c_int(MMAP_THRESHOLD)))

    def trim(self) -> bool:
        """``malloc_trim(0)``: return every arena's free pages to the system."""
        if self._libc is None:
            return False
        self._libc.malloc_trim(ctypes.c_size_t(0))
        return True


PROCESS = Allocator.of_process()
"""This process's allocator (the CLI limits arenas and fixes the mmap threshold; /metrics
trims after each rendering)."""
