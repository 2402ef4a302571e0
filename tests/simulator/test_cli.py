"""``simulate`` command: serves until SIGTERM, prints demo keys only for the demo, exits 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from tests.signalling import handler_waited_for_lock
from trtc_exporter.secret import Secret
from trtc_exporter.simulator import Credential, post
from trtc_exporter.simulator.cli import _stop_on_signals, main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "simulator"


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trtc_exporter.simulator", "--listen", "127.0.0.1:0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return proc, match.group(1)
    proc.kill()
    raise AssertionError("simulator did not log its URL")


def _close(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.mark.integration
def test_demo_mode_prints_its_keys_and_config_and_stops_on_sigterm() -> None:
    """Without options the demo keys and an exporter config are printed; SIGTERM exits 0."""
    proc, url = _start("--seed", "3")
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[1].startswith("export ") and lines[2].startswith("export ")  # paste-able
        secret_id = lines[1].strip().removeprefix("export TENCENTCLOUD_SECRET_ID=")
        secret_key = lines[2].strip().removeprefix("export TENCENTCLOUD_SECRET_KEY=")
        cred = Credential(secret_id, Secret(secret_key))
        with requests.Session() as session:
            r = post(session, url, cred, "DescribeAITranscription", {"TaskId": "nope"})
        assert r.json()["Response"]["Error"]["Code"] == "FailedOperation.TaskNotExist"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.stdout.read() if proc.stdout is not None else ""  # buffered: not communicate()
        proc.wait(10)
        _close(proc)
    assert proc.returncode == 0
    config = yaml.safe_load("".join(lines[3:]) + out)
    assert config["api"]["endpoint"] == url
    assert {"task_id": "sim-task-does-not-exist", "region": "ap-guangzhou"} in config["targets"]


@pytest.mark.integration
def test_scenario_mode_prints_no_credentials_and_stops_on_sigint(tmp_path: Path) -> None:
    """With a scenario file nothing secret is printed; SIGINT exits 0 as well."""
    scenario = tmp_path / "s.yml"
    scenario.write_text("credentials: [{secret_id: AKIDcli, secret_key: clikey}]\n")
    proc, url = _start("--scenario", str(scenario), "--rate-limit", "5")
    try:
        cred = Credential("AKIDcli", Secret("clikey"))
        with requests.Session() as session:
            codes = [
                post(session, url, cred, "DescribeAITranscription", {"TaskId": "x"}).json()[
                    "Response"
                ]["Error"]["Code"]
                for _ in range(6)
            ]
        assert codes == ["FailedOperation.TaskNotExist"] * 5 + ["RequestLimitExceeded"]
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        _close(proc)
    assert proc.returncode == 0
    assert out == ""
    assert "clikey" not in err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    """--help prints usage and returns 0 instead of raising SystemExit."""
    assert main(["simulate", "--help"]) == 0
    assert "--listen HOST:PORT" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [["--listen", "nowhere"], ["--rate-limit", "x"], ["--secret-id", "AKID"]],
    ids=["bad-listen", "bad-rate", "id-without-key"],
)
def test_usage_errors_exit_two(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Malformed options return exit code 2 with a message on stderr."""
    assert main(argv) == 2
    assert capsys.readouterr().err


def test_bad_scenario_exits_two_with_file_and_field_path(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A broken scenario is reported as 'FILE: field.path: problem' and exit code 2."""
    path = FIXTURES / "invalid-task-region.yml"
    assert main(["--scenario", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"{path}: tasks[0].region: cloud_transcription supports ap-guangzhou, "
        "ap-hongkong, ap-singapore, got 'ap-tokyo'\n"
    )


def test_callbacks_url_flag_sets_the_receiver_and_refuses_a_bad_url(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--callbacks.url enables callbacks on the demo account; a non-http URL exits 2."""
    from trtc_exporter.simulator import cli

    args = cli._parser().parse_args(["--callbacks.url", "http://127.0.0.1:9/webhook/trtc"])
    scenario, _ = cli._scenario(args)
    assert scenario.callbacks is not None
    assert scenario.callbacks.url == "http://127.0.0.1:9/webhook/trtc"
    assert main(["--callbacks.url", "file:///etc/passwd"]) == 2
    assert "--callbacks.url: must be an http:// or https:// URL" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999/webhook/trtc"])
def test_an_unparseable_callbacks_url_exits_2_without_a_traceback(
    url: str, capsys: pytest.CaptureFixture[str],
) -> None:
    """An unclosed IPv6 bracket or a port past 65535 is a one-line error and exit 2."""
    assert main(["--callbacks.url", url]) == 2
    err = capsys.readouterr().err
    assert f"--callbacks.url: must be an http:// or https:// URL, got {url!r}" in err
    assert "Traceback" not in err


def test_a_stop_signal_never_waits_for_the_lock_of_the_event_simulate_waits_on() -> None:
    """A SIGTERM landing while the main thread holds the lock of the event ``simulate`` waits
    on (entering or leaving its wait) returns at once and still stops it; a handler that
    set the event itself would wait for that lock for ever (a helper frees it after 2 s)."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        stop = _stop_on_signals()
        assert not handler_waited_for_lock(stop), "simulate's SIGTERM handler waited for its lock"
        assert stop.wait(5)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
