"""The per-target task families, rendered once per state change and joined on every scrape.

A target's series change only when a poll answers (a new, immutable :class:`TargetState`), when
its shown status turns Unknown (staleness, a function of the clock) or when the set of operator
label names changes. Everything else is the same bytes as last scrape, so each target's lines are
kept as a fragment per family (its pieces: names, the label set stored once, values) and a
scrape joins them. The one value that moves with the clock,
``trtc_ai_transcription_running_seconds``, keeps its label part cached and formats only the
number per scrape.

The output is byte for byte what :class:`~trtc_exporter.exposition.tasks.TaskCollector` gives
through client_python's encoders (the text format and OpenMetrics write these gauge samples the
same way): labels sorted by name, values escaped as client_python does (backslash, newline,
double quote), numbers by client_python's own ``floatToGoString``. Tests compare the two on
hypothesis-generated states and parse the result with client_python's parsers.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, islice
from operator import attrgetter, itemgetter

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from trtc_exporter.clock import WallSeconds
from trtc_exporter.exposition.dropped import printable_target
from trtc_exporter.exposition.families import family, states_of
from trtc_exporter.exposition.tasks import TASK_FAMILIES
from trtc_exporter.metrics import DropCounter
from trtc_exporter.polling.state import TargetState
from trtc_exporter.target import IDENTITY_LABELS

log = logging.getLogger("trtc_exporter.collector")  # the logger of TaskCollector's failures
RUNNING = "trtc_ai_transcription_running_seconds"
_KEY = attrgetter("target.key")
go_float: Callable[[float], str] = floatToGoString  # client_python's number format (untyped)
# targets joined per streamed piece: at most ~120 kB (the StateSet's six lines, ~0.9 kB a
# target), under glibc's 128 KiB mmap threshold. A larger piece is mmapped and, once freed,
# raises that threshold to its size, after which every such piece comes from (and stays in)
# the heap: RSS under concurrent scrapes rose with the piece size (issue 16, goal 3).
BLOCK = 128
# a target's lines of every family but running_seconds, as one flat tuple of pieces whose
# concatenation per family is its text; LAYOUT gives each family's slice, in TASK_FAMILIES order
# (one tuple, not one per family: 0.4 kB a target less). The StateSet, whose line count depends
# on the API, comes last; an absent sample is three empty pieces.
Fragment = tuple[bytes, ...]
LAYOUT = (slice(13, None), slice(0, 3), slice(3, 6), slice(6, 7), slice(7, 10), slice(10, 13))
_ABSENT = (b"", b"", b"")


def escape_value(value: str) -> str:
    """A label value as client_python writes it (``openmetrics._escape`` with ALLOWUTF8)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(pairs))


def _with(pairs: list[tuple[str, str]], name: str) -> tuple[str, str]:
    """The label text around one more label ``name``: (before + 'name="', '"' + after)."""
    before = _labels([p for p in pairs if p[0] < name])
    after = _labels([p for p in pairs if p[0] > name])
    return (before + "," if before else "") + f'{name}="', '"' + ("," + after if after else "")


class _Entry:
    """What was rendered for one target, and what it was rendered from."""

    __slots__ = ("fragment", "running", "shown", "state")

    # ``fragment`` is () for a target left out (a label value that cannot be written)
    def __init__(self, state: TargetState, shown: str, fragment: Fragment,
                 running: bytes | None) -> None:
        self.state = state
        self.shown = shown
        self.fragment = fragment
        self.running = running  # label part of running_seconds, None when the series is absent


def _line_end(value: float) -> bytes:
    return f"{go_float(value)}\n".encode()


NAMES = tuple(name.encode() for name in TASK_FAMILIES)
_ONE, _ZERO = _line_end(1.0), _line_end(0.0)  # shared by every target's 0/1 samples


def render_target(state: TargetState, shown: str, extra: tuple[str, ...]) -> _Entry:
    """Render one target's lines of every task family (``extra``: operator label names).

    A family's lines are kept as pieces (name, label set, value) whose concatenation is the
    text: the label set, the same in five families, is stored once per target, and the names
    and 0/1 values are shared by all targets (half the memory of whole lines at 10 000 targets;
    joining more, smaller pieces costs little)."""
    target = state.target
    own = dict(target.labels)
    pairs = [(n, escape_value(v)) for n, v in zip(IDENTITY_LABELS, target.key, strict=True)]
    pairs += [(n, escape_value(own.get(n, ""))) for n in extra]
    labels = ("{" + _labels(pairs) + "} ").encode()
    fragment = (*_sample(1, labels, state.start_time),
                *_sample(2, labels, state.status_change_time),
                _info(pairs, state.resolved_task_id), *_sample(4, labels, state.last_success),
                NAMES[5], labels, _ONE if state.poll_success else _ZERO,
                *_status(pairs, target.action, shown))
    running = labels if shown == "InProgress" and state.start_time is not None else None
    return _Entry(state, shown, fragment, running)


def _status(pairs: list[tuple[str, str]], action: str, shown: str) -> tuple[bytes, ...]:
    """The StateSet's lines as (opening, state, closing) triples: one opening per target, and
    two closings (value 1 and value 0)."""
    head, tail = _with(pairs, "status")
    opening = f"{TASK_FAMILIES[0]}{{{head}".encode()
    closing = f"{tail}}} ".encode()
    ones, zeros = closing + _ONE, closing + _ZERO
    out: list[bytes] = []
    for status in states_of(action):
        out += (opening, _state_text(status), ones if status == shown else zeros)
    return tuple(out)


@functools.cache
def _state_text(status: str) -> bytes:
    return escape_value(status).encode()  # a handful of names: one bytes each for all targets


def _sample(family_index: int, labels: bytes, value: float | None) -> tuple[bytes, ...]:
    return _ABSENT if value is None else (NAMES[family_index], labels, _line_end(value))


def _info(pairs: list[tuple[str, str]], resolved: str) -> bytes:
    head, tail = _with(pairs, "resolved_task_id")
    return f"{TASK_FAMILIES[3]}{{{head}{escape_value(resolved)}{tail}}} ".encode() + _ONE


def headers(openmetrics: bool, extra: tuple[str, ...]) -> list[bytes]:
    """The ``# HELP``/``# TYPE`` lines of each task family, written by client_python itself."""
    encode = generate_openmetrics if openmetrics else generate_latest
    out = []
    for name in TASK_FAMILIES:
        one = CollectorRegistry(auto_describe=True)
        one.register(_Fixed(family(name, extra)))
        out.append(encode(one).removesuffix(b"# EOF\n"))
    return out


class _Fixed(Collector):
    """A collector yielding one prepared family (only to have client_python write headers)."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        return [self._metric]


class TaskFragments:
    """The cache of every target's fragments; :meth:`render` gives the task section.

    ``states`` returns the current snapshot and ``now`` wall-clock seconds, as for
    :class:`TaskCollector`; targets left out are counted in ``drops`` as it does (each scrape:
    ``invalid_text`` for a label value that cannot be written, ``render_error`` for a bug).
    Thread-safe: concurrent scrapes render one at a time (a scrape of an unchanged set only
    joins cached bytes).
    """

    def __init__(self, states: Callable[[], list[TargetState]],
                 now: Callable[[], WallSeconds], drops: DropCounter | None = None) -> None:
        self._states = states
        self._now = now
        self._drops = drops or DropCounter()
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, ...], _Entry] = {}
        self._extra: tuple[str, ...] = ()
        self._headers: dict[bool, list[bytes]] = {}
        self.rendered = 0  # targets rendered since start (for tests and the benchmark)

    def render(self, openmetrics: bool) -> list[bytes]:
        """The task families (headers and samples) as byte pieces, in TaskCollector's order."""
        entries, heads, now = self._snapshot(openmetrics)
        return list(_pieces(entries, heads, now, max(1, len(entries))))

    def stream(self, openmetrics: bool) -> Iterator[bytes]:
        """The bytes of :meth:`render`, joined ``BLOCK`` targets at a time as they are consumed:
        a consumer that compresses or writes each piece in turn holds about 100 kB of text
        at a time instead of the whole section (16 MB at 10 000 targets) per scrape. The
        snapshot is taken now; only the joins are deferred."""
        entries, heads, now = self._snapshot(openmetrics)
        return _pieces(entries, heads, now, BLOCK)

    def _snapshot(self, openmetrics: bool) -> tuple[list[_Entry], list[bytes], WallSeconds]:
        with self._lock:
            now = self._now()
            fresh: dict[tuple[str, ...], _Entry] = {}
            states = self._printable(sorted(self._states(), key=_KEY), fresh)
            self._refresh_labels(states)
            entries = self._entries(states, now, fresh)
            heads = self._headers.get(openmetrics)
            if heads is None:
                heads = self._headers[openmetrics] = headers(openmetrics, self._extra)
        return entries, heads, now

    def _printable(self, states: list[TargetState],
                   fresh: dict[tuple[str, ...], _Entry]) -> list[TargetState]:
        """The states whose label values can be written (checked once per state)."""
        kept = []
        for state in states:
            entry = self._cache.get(state.target.key)
            if entry is not None and entry.state is state:
                ok = bool(entry.fragment)
            else:
                ok = printable_target(state.target, (state.resolved_task_id,))
            if ok:
                kept.append(state)
            else:
                self._drops.add("invalid_text")
                fresh[state.target.key] = _Entry(state, "", (), None)
        return kept

    def _refresh_labels(self, states: Iterable[TargetState]) -> None:
        extra = tuple(sorted({name for s in states for name, _ in s.target.labels}))
        if extra != self._extra:  # every line carries every label name: render all again
            self._extra, self._cache, self._headers = extra, {}, {}

    def _entries(self, states: list[TargetState], now: WallSeconds,
                 fresh: dict[tuple[str, ...], _Entry]) -> list[_Entry]:
        old = self._cache
        entries = []
        for state in states:
            key = state.target.key
            shown = state.shown_status(now)
            entry = old.get(key)
            if entry is None or entry.state is not state or entry.shown != shown:
                try:
                    entry = render_target(state, shown, self._extra)
                except Exception:  # leave this target out, serve the others (as TaskCollector)
                    log.exception("rendering %s failed; its series are left out",
                                  state.target.describe())
                    self._drops.add("render_error")
                    continue
                self.rendered += 1
            fresh[key] = entry
            entries.append(entry)
        self._cache = fresh  # drops the entries of targets that left
        return entries


def _pieces(entries: list[_Entry], heads: list[bytes], now: WallSeconds,
            block: int) -> Iterator[bytes]:
    """Each family's header, then its samples joined ``block`` targets at a time."""
    fragments = [e.fragment for e in entries]
    for part, head in zip(LAYOUT, heads, strict=False):
        yield head
        family_of = itemgetter(part)
        for i in range(0, len(fragments), block):
            yield b"".join(chain.from_iterable(map(family_of, fragments[i:i + block])))
    yield heads[-1]
    running = _running_lines(entries, now)
    while chunk := b"".join(islice(running, block)):
        yield chunk


def _running_lines(entries: list[_Entry], now: WallSeconds) -> Iterable[bytes]:
    for entry in entries:
        if entry.running is not None:
            start = entry.state.start_time or 0.0
            yield NAMES[6] + entry.running + _line_end(max(0.0, now - start))
