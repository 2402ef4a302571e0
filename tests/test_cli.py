"""The command line in-process: help texts, the hint without a config file, signal handlers."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.signalling import handler_waited_for_lock
from trtc_exporter.cli import build_parser, main
from trtc_exporter.signals import Signals, StopDuringStartup


@pytest.fixture(autouse=True)
def keep_handlers() -> Iterator[None]:
    """main() installs process signal handlers: give pytest its own back afterwards."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_every_flag_has_help_text() -> None:
    """--log.level and --log.format (and every other flag) explain themselves in --help."""
    parser = build_parser()
    for action in parser._actions:  # argparse has no public list of its flags
        if action.option_strings and action.dest not in ("help", "version"):
            assert action.help, action.option_strings
    text = " ".join(parser.format_help().split())
    assert "only log messages of this severity or above" in text
    assert "output format of log messages" in text


def test_no_config_file_hints_at_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Started where no trtc-exporter.yml exists and without --config.file: exit 2 with a line
    that says so and mentions --demo."""
    monkeypatch.chdir(tmp_path)
    assert main([]) == 2
    err = capsys.readouterr().err
    assert "no --config.file given and no trtc-exporter.yml" in err and "--demo" in err


def test_yaml_error_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config that is not YAML is refused with the file's path in the message."""
    path = tmp_path / "broken.yml"
    path.write_text("targets: [\n", encoding="utf-8")
    assert main(["--config.file", str(path), "--config.check"]) == 2
    assert f"{path}: invalid YAML at line 2" in capsys.readouterr().err


def test_stop_during_start_up_interrupts_and_is_remembered() -> None:
    """Before running(), SIGTERM sets stop and interrupts start-up; after it, it only sets stop."""
    signals = Signals().install()
    with pytest.raises(StopDuringStartup):
        signal.raise_signal(signal.SIGTERM)
    assert signals.stop.wait(5)  # set by the signals thread
    signals.stop.clear()
    signals.running(lambda: None)
    signal.raise_signal(signal.SIGTERM)
    assert signals.stop.wait(5)


def test_a_stop_signal_never_waits_for_a_lock_the_main_thread_holds() -> None:
    """A SIGTERM that lands while the main thread holds the stop event's lock (entering or
    leaving its wait) returns at once, and stop is set; a handler that set the event itself
    would wait for that lock for ever (here a helper frees it after 2 s and the test fails)."""
    signals = Signals().install()
    signals.running(lambda: None)
    assert not handler_waited_for_lock(signals.stop), "the SIGTERM handler waited for its lock"
    assert signals.stop.wait(5)


def test_sighup_reloads_off_the_main_thread_once_running() -> None:
    """Once running, SIGHUP runs ``reload`` in a thread of its own (a slow config read never
    delays a stop behind it)."""
    signals = Signals().install()
    called: list[str] = []
    done = threading.Event()
    signals.running(lambda: (called.append(threading.current_thread().name), done.set()))
    signal.raise_signal(signal.SIGHUP)
    assert done.wait(5)
    assert called == ["sighup-reload"]


def test_a_reload_that_cannot_start_never_loses_later_stops(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGHUP whose reload thread cannot start (the OS's thread limit, e.g. a container's
    pids.max, stood in for by a patched start) leaves the ``signals`` thread reading: a later
    SIGTERM still sets stop."""
    signals = Signals().install()
    signals.running(lambda: None)
    start = threading.Thread.start

    def no_reload_thread(thread: threading.Thread) -> None:
        if thread.name == "sighup-reload":
            raise RuntimeError("can't start new thread")
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", no_reload_thread)
    signal.raise_signal(signal.SIGHUP)
    signal.raise_signal(signal.SIGTERM)
    assert signals.stop.wait(5), "the signals thread died with the reload"


def test_main_exits_zero_when_stopped_during_start_up(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop that arrives while the config is read ends main() with 0, not a traceback."""
    path = tmp_path / "c.yml"
    path.write_text("targets: []\n", encoding="utf-8")

    def slow_load(_path: str) -> object:
        signal.raise_signal(signal.SIGTERM)  # arrives in the middle of the slow work
        raise AssertionError("start-up went on after SIGTERM")

    monkeypatch.setattr("trtc_exporter.cli.load_config", slow_load)
    assert main(["--config.file", str(path)]) == 0


def test_malloc_arenas_are_limited_before_the_signals_thread_starts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() limits glibc's arenas while the main thread is still the only one of its own:
    the signals thread, started by the handlers' install, would otherwise get an arena of its
    own before the limit."""
    from trtc_exporter import allocator

    seen: list[set[int | None]] = []
    monkeypatch.setattr(allocator.PROCESS, "limit_arenas",
                        lambda: seen.append({t.ident for t in threading.enumerate()}) or True)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKIDtest")
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "key")
    before = {t.ident for t in threading.enumerate()}
    path = tmp_path / "c.yml"
    path.write_text("targets: []\n", encoding="utf-8")
    assert main(["--config.file", str(path), "--config.check"]) == 0
    assert len(seen) == 1 and not seen[0] - before  # no thread started before the limit
