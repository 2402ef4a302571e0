"""The ``check`` command against the in-process simulator: real signed requests, real sockets."""

from __future__ import annotations

import io
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.coordination.conftest import RedisProcess
from trtc_exporter.cli import main
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import parse_config
from trtc_exporter.onlinecheck import (
    CheckResult,
    online_check,
    print_report,
    redis_results,
    web_config_result,
    webhook_results,
)
from trtc_exporter.simulator import SimulatorServer, parse_scenario

SECRET_ID, SECRET_KEY = "AKIDcheck000000000000000000000000001", "checkSECRETkey0000000000000000001"
SCENARIO = {"credentials": [{"secret_id": SECRET_ID, "secret_key": SECRET_KEY}], "tasks": []}


@pytest.fixture
def sim() -> Iterator[SimulatorServer]:
    server = SimulatorServer.from_scenario(parse_scenario(SCENARIO))
    server.start()
    yield server
    server.stop()


def write_config(tmp: Path, endpoint: str, key: str = SECRET_KEY, **extra: Any) -> str:
    """A config with two 1.0 targets in one region and a 2.0 target in another."""
    (tmp / "id").write_text(SECRET_ID)
    (tmp / "key").write_text(key)
    raw = {"api": {"endpoint": endpoint, "timeout": "2s",
                   "credentials": {"secret_id_file": str(tmp / "id"),
                                   "secret_key_file": str(tmp / "key")}},
           "targets": [{"task_id": "a"}, {"task_id": "b"},
                       {"api": "cloud_transcription", "task_id": "c", "sdk_app_id": 1400000001,
                        "region": "ap-singapore"}], **extra}
    path = tmp / "config.yml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def run(path: str, **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = online_check(path, out=out, **kw)
    return code, out.getvalue()


def served_requests(sim: SimulatorServer) -> dict[str, dict[str, int]]:
    stats = sim.api.stats.to_json({}, {})
    by_action: dict[str, dict[str, int]] = stats["by_action"]
    return by_action


def test_correct_keys_pass_with_one_request_per_region_and_action(
        sim: SimulatorServer, tmp_path: Path) -> None:
    """Right keys: every line ✓, exit 0, exactly one request per (action, region), no secret."""
    code, text = run(write_config(tmp_path, sim.url))
    assert code == 0, text
    assert "✗" not in text and "all checks passed" in text
    assert "DescribeAITranscription in ap-guangzhou" in text
    assert "DescribeCloudTranscription in ap-singapore" in text
    assert "found in file" in text and SECRET_KEY not in text and SECRET_ID not in text
    assert served_requests(sim) == {"DescribeAITranscription": {"FailedOperation.TaskNotExist": 1},
                                    "DescribeCloudTranscription":
                                        {"FailedOperation.TaskNotExist": 1}}


def test_wrong_secret_key_fails_with_the_fix(sim: SimulatorServer, tmp_path: Path) -> None:
    """A wrong SecretKey: ✗ AuthFailure.SignatureFailure with its fix, exit 1, no retry."""
    code, text = run(write_config(tmp_path, sim.url, key="wrongSECRETkey00000000000000000001"))
    assert code == 1
    assert "✗" in text and "AuthFailure.SignatureFailure" in text
    assert "fix: the SecretKey does not match the SecretId" in text
    assert sum(sum(c.values()) for c in served_requests(sim).values()) == 2


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_fails(tmp_path: Path) -> None:
    """Nothing listening: each request ✗ ConnectionError with the reachability fix; the clock
    is not measured."""
    code, text = run(write_config(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert code == 1
    assert text.count("ConnectionError") == 2
    assert "check api.endpoint, DNS, proxy settings" in text
    assert "not measured: no answer from the API" in text


def test_skewed_clock_is_reported(sim: SimulatorServer, tmp_path: Path) -> None:
    """A local clock 120 s fast still signs within the API's 300 s, but the check fails it."""
    code, text = run(write_config(tmp_path, sim.url), clock=FakeClock(time.time() + 120))
    assert code == 1
    assert "DescribeAITranscription in ap-guangzhou" in text
    clock_line = next(line for line in text.splitlines() if "clock" in line)
    assert clock_line.startswith("✗") and "ahead of the API" in clock_line
    assert "sync the clock with NTP" in text


def test_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config that fails the start-up checks exits 2 with the field path, sends nothing."""
    path = tmp_path / "bad.yml"
    path.write_text("poll_interval: soon\n")
    assert online_check(str(path)) == 2
    assert "poll_interval" in capsys.readouterr().err


def test_cli_check_and_online_alias(sim: SimulatorServer, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`check` and `--config.check --online` run the same checks and exit codes."""
    path = write_config(tmp_path, sim.url)
    assert main(["check", "--config.file", path]) == 0
    assert main(["--config.check", "--online", "--config.file", path]) == 0
    assert capsys.readouterr().out.count("all checks passed") == 2


def test_ascii_fallback() -> None:
    """Without a UTF-8 stdout the marks are OK/FAIL and nothing fails to encode."""
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii")
    assert not print_report([CheckResult("a", True, "fine"),
                             CheckResult("b", False, "bad \u2013 dash", "do X")], out)
    out.flush()
    text = raw.getvalue().decode("ascii")
    assert "OK   a" in text and "FAIL b" in text and "fix: do X" in text


def test_web_config_problems_are_reported(tmp_path: Path) -> None:
    """A web config naming a TLS file that is missing fails with the reason."""
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {tmp_path}/none.crt\n"
                   f"  key_file: {tmp_path}/none.key\n")
    result = web_config_result(str(web))
    assert not result.ok and result.fix
    assert web_config_result("").ok


def test_redis_unreachable_is_reported() -> None:
    """With coordination configured, a Redis that does not answer PING fails with the fix."""
    config = parse_config({"coordination": {"redis_url": f"redis://127.0.0.1:{closed_port()}/0"}})
    [result] = redis_results(config)
    assert not result.ok and "PING 127.0.0.1" in result.detail
    assert "redis_url" in result.fix


def test_no_coordination_means_no_redis_line() -> None:
    """Without coordination.redis_url the report has no Redis line at all."""
    assert redis_results(parse_config({})) == []


def test_a_redis_answering_pong_passes(sim: SimulatorServer, tmp_path: Path,
                                       own_redis: RedisProcess) -> None:
    """The whole command with coordination.redis_url at a real Redis: ✓ redis PONG, exit 0."""
    path = write_config(tmp_path, sim.url, coordination={"redis_url": own_redis.url})
    code, text = run(path)
    assert code == 0, text
    [line] = [line for line in text.splitlines() if " redis " in line]
    assert line.startswith("✓") and f"PING 127.0.0.1:{own_redis.port}: PONG" in line


def test_a_wrong_redis_password_fails_with_the_fix(sim: SimulatorServer, tmp_path: Path,
                                                   own_redis: RedisProcess) -> None:
    """Redis with requirepass and a wrong password file: ✗ with the password fix, exit 1, and
    neither password is printed."""
    own_redis.client().config_set("requirepass", "TheRightRedisPassword")
    (tmp_path / "redis-password").write_text("NotTheRedisPassword\n")
    path = write_config(tmp_path, sim.url, coordination={
        "redis_url": own_redis.url, "password_file": str(tmp_path / "redis-password")})
    code, text = run(path)
    assert code == 1, text
    [line] = [line for line in text.splitlines() if " redis " in line]
    assert line.startswith("✗") and "AuthenticationError" in line
    assert "fix: Redis refused the password: put the right one in coordination.password_file" \
        in text
    assert "NotTheRedisPassword" not in text and "TheRightRedisPassword" not in text


def test_an_unreadable_webhook_key_file_is_a_config_error(
        sim: SimulatorServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A callback key file that cannot be read stops at the start-up checks: exit 2, the
    field path on stderr, no request sent (as the exporter itself would refuse to start)."""
    (tmp_path / "keydir").mkdir()  # a directory in place of the file: unreadable even as root
    path = write_config(tmp_path, sim.url, webhook={"key_file": str(tmp_path / "keydir")})
    assert online_check(path) == 2
    assert "webhook.key_file" in capsys.readouterr().err
    assert served_requests(sim) == {}


def test_webhook_keys_are_checked_per_file(tmp_path: Path) -> None:
    """Each configured callback key file is one line; a bad one fails naming its field."""
    (tmp_path / "good").write_text("GoodKey123\n")
    (tmp_path / "bad").write_text("not a key\n")
    config = parse_config({"webhook": {"key_file": str(tmp_path / "good")},
                           "apps": {1400000001: {"callback_key_file": str(tmp_path / "bad")}}})
    results = webhook_results(config)
    assert [r.ok for r in results] == [True, False]
    assert "apps.1400000001.callback_key_file" in results[1].detail
    assert [r.ok for r in webhook_results(parse_config({}))] == [True]
