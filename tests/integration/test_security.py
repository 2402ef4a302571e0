"""Secret hygiene of the installed exporter: no key, token or password in anything it outputs.

Recognisable secret values go in through every door (environment, key files, a token, a basic-auth
password and its hash, mistakes in configs); the exporter then runs through start, polls that the
simulator answers with AuthFailure and with success, reloads by HTTP and SIGHUP with a good and a
broken config, bad-config starts and ``--config.check``, all at ``--log.level debug``. Every log
line and every page it served is kept and searched for the values at the end of each test.
The SecretId travels in the Authorization header by design; it still must not be logged or shown.
"""

from __future__ import annotations

import base64
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml

from tests.integration.harness import Exporter, Simulator, dump, run_cli, wait_for

pytestmark = pytest.mark.integration
APP = 1400000001
USER = "scraper"
ENV_ID = "AKIDhygieneENV0000000000000000000001"
ENV_KEY = "hygieneENVkey-Zq7sV9pX2mL4wR8t"
ENV_TOKEN = "hygieneENVtoken-Kf3nB6yH1cJ5"
FILE_ID = "AKIDhygieneFILE000000000000000000002"
FILE_KEY = "hygieneFILEkey-Lp4uE8wQ3zN7"
FILE_TOKEN = "hygieneFILEtoken-Rx5mC2vD9sA1"
ROTATED_KEY = "hygieneROTATEDkey-Jb6nK1tY4gH8"
PASSWORD = "hygienePASSWORD-Wd2gT7qM"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
SECRETS = {
    "secret key (env)": ENV_KEY, "session token (env)": ENV_TOKEN,
    "secret key (file)": FILE_KEY, "session token (file)": FILE_TOKEN,
    "rotated secret key": ROTATED_KEY, "basic-auth password": PASSWORD,
    "basic-auth password hash": PASSWORD_HASH,
    "basic-auth header": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    "SecretId (env)": ENV_ID, "SecretId (file)": FILE_ID,
}
ENV = {"TENCENTCLOUD_SECRET_ID": ENV_ID, "TENCENTCLOUD_SECRET_KEY": ENV_KEY,
       "TENCENTCLOUD_SESSION_TOKEN": ENV_TOKEN}
PAGES = ("/", "/metrics", "/api/v1/targets", "/probe?task_id=t-good", "/probe?task_id=t-auth",
         "/-/healthy", "/-/ready", "/no-such-page")


class Outputs:
    """Everything the exporter said, labelled by where it came from."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def add_response(self, where: str, response: requests.Response) -> None:
        head = "".join(f"{k}: {v}\n" for k, v in response.headers.items())
        self.add(f"{where} (HTTP {response.status_code})", head + response.text)

    def leaks(self) -> list[str]:
        return [f"{name} in {where}" for where, text in self.texts
                for name, value in SECRETS.items() if value in text]


@pytest.fixture
def outputs() -> Iterator[Outputs]:
    """Collects outputs during the test and fails it if any secret value is in one of them."""
    collected = Outputs()
    yield collected
    assert collected.texts, "nothing was collected"
    assert collected.leaks() == []


def scenario() -> dict[str, Any]:
    """Both key pairs (with tokens) are valid; t-auth always gets AuthFailure.SignatureFailure."""
    forever = {"idle": 0, "preparing": 0, "in_progress": "forever"}
    return {
        "credentials": [{"secret_id": ENV_ID, "secret_key": ENV_KEY, "token": ENV_TOKEN},
                        {"secret_id": FILE_ID, "secret_key": FILE_KEY, "token": FILE_TOKEN}],
        "tasks": [{"task_id": "t-good", "api": "ai_transcription", "sdk_app_id": APP,
                   "phases": forever},
                  {"task_id": "t-auth", "api": "ai_transcription", "sdk_app_id": APP,
                   "phases": forever, "faults": [{"kind": "auth_failure"}]}],
    }


def config(sim: Simulator, task_ids: list[str], **credentials: str) -> dict[str, Any]:
    api: dict[str, Any] = {"endpoint": sim.url, "max_retries": 1, "timeout": "2s"}
    if credentials:
        api["credentials"] = credentials
    return {"api": api, "poll_interval": "1s", "targets": [{"task_id": t} for t in task_ids]}


def write_web_config(folder: Path, hashed: str = PASSWORD_HASH) -> Path:
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {USER: hashed}}))
    return path


def collect_pages(exp: Exporter, out: Outputs, when: str) -> None:
    """Every page with the right password, plus 401 answers to a wrong and to no password."""
    for path in PAGES:
        out.add_response(f"{when} GET {path}", requests.get(exp.url + path, auth=(USER, PASSWORD),
                                                            timeout=5))
    for auth in ((USER, PASSWORD + "x"), None):
        response = requests.get(exp.url + "/metrics", auth=auth, timeout=5)
        assert response.status_code == 401
        out.add_response(f"{when} GET /metrics with auth {auth!r}", response)


def reload_flag(exp: Exporter) -> float | None:
    response = requests.get(exp.url + "/metrics", auth=(USER, PASSWORD), timeout=5)
    for line in response.text.splitlines():
        if line.startswith("trtc_exporter_config_last_reload_successful "):
            return float(line.split()[1])
    return None


def post_reload(exp: Exporter, out: Outputs, when: str) -> int:
    response = requests.post(exp.url + "/-/reload", auth=(USER, PASSWORD), timeout=10)
    out.add_response(f"POST /-/reload {when}", response)
    return response.status_code


def broken_config_text(sim: Simulator) -> str:
    """A config with the key pasted where it does not belong (an unknown key) and a bad value."""
    return yaml.safe_dump({"api": {"endpoint": sim.url, "secret_key": ENV_KEY,
                                   "credentials": {"secret_key": FILE_KEY, "token": ENV_TOKEN}},
                           "poll_interval": "1s", "targets": [{"task_id": "t-good"}],
                           "password": PASSWORD})


def sighup_and_wait(exp: Exporter, expected: float) -> None:
    exp.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: reload_flag(exp) == expected, 10, f"SIGHUP reload to give {expected}")


def test_env_credentials_with_auth_failures_reloads_and_debug_logs(
        tmp_path: Path, outputs: Outputs) -> None:
    """Env keys + token, AuthFailure answers, HTTP and SIGHUP reloads: no secret is ever output."""
    sim = Simulator(tmp_path, scenario())
    (tmp_path / "exp").mkdir()
    web = write_web_config(tmp_path / "exp")
    exp = Exporter(tmp_path / "exp", config(sim, ["t-good", "t-auth"]), env=ENV, wait_ready=False,
                   extra_args=["--log.level", "debug", "--web.config.file", str(web),
                               "--web.enable-lifecycle"])
    try:
        wait_for(lambda: requests.get(exp.url + "/-/ready", auth=(USER, PASSWORD),
                                      timeout=1).ok, 30, "exporter to be ready")
        collect_pages(exp, outputs, "after start")
        rows = requests.get(exp.url + "/api/v1/targets", auth=(USER, PASSWORD), timeout=5).json()
        codes = {r["task_id"]: r["last_error_code"] for r in rows["data"]}
        assert codes == {"t-good": None, "t-auth": "AuthFailure.SignatureFailure"}, dump(exp, sim)
        sim.control("POST", "faults", {"faults": [
            {"kind": "auth_failure", "code": "AuthFailure.SecretIdNotFound", "duration": 1.5},
            {"kind": "auth_failure", "code": "AuthFailure.TokenFailure", "after": 1.5,
             "duration": 1.5}]})
        time.sleep(3.5)
        collect_pages(exp, outputs, "after account-wide auth failures")
        exp.config_path.write_text(yaml.safe_dump(config(sim, ["t-good", "t-auth", "t-new"])))
        assert post_reload(exp, outputs, "with a good config") == 200
        exp.config_path.write_text(broken_config_text(sim))
        assert post_reload(exp, outputs, "with a broken config") == 500
        exp.config_path.write_text(yaml.safe_dump(config(sim, ["t-good"])))
        sighup_and_wait(exp, 1.0)
        exp.config_path.write_text(broken_config_text(sim))
        sighup_and_wait(exp, 0.0)
        write_web_config(tmp_path / "exp", hashed=PASSWORD)  # the password pasted as its hash
        time.sleep(1.5)  # the web config is re-read at most once a second; the old one stays
        collect_pages(exp, outputs, "after the reloads")
    finally:
        assert exp.stop() == 0
        sim.stop()
    log = exp.output()
    outputs.add("exporter log (debug, logfmt)", log)
    assert log.count("reload failed, keeping the running configuration") == 2, log
    assert "reload failed, keeping the last good one" in log
    assert "level=debug" in log  # the debug level really was on


def test_file_credentials_rotation_and_json_debug_logs(tmp_path: Path, outputs: Outputs) -> None:
    """Key files with a token, rotated and then broken at runtime, leave no trace in any output."""
    sim = Simulator(tmp_path, scenario())
    keys = tmp_path / "keys"
    keys.mkdir()
    for name, value in (("id", FILE_ID), ("key", FILE_KEY), ("token", FILE_TOKEN)):
        (keys / name).write_text(value + "\n")
    files = {"secret_id_file": str(keys / "id"), "secret_key_file": str(keys / "key"),
             "token_file": str(keys / "token")}
    (tmp_path / "exp").mkdir()
    exp = Exporter(tmp_path / "exp", config(sim, ["t-good", "t-auth"], **files), env=ENV,
                   extra_args=["--log.level", "debug", "--log.format", "json",
                               "--web.enable-lifecycle"])
    try:
        collect_files_pages(exp, outputs, "after start")
        assert exp.statuses() == {"t-good": "InProgress", "t-auth": "Unknown"}, dump(exp, sim)
        (keys / "key").write_text(ROTATED_KEY + "\n")  # wrong for the simulator: AuthFailure
        time.sleep(2.5)
        collect_files_pages(exp, outputs, "after rotating to a wrong key")
        (keys / "key").write_text("")  # half-written file: the last good key stays
        time.sleep(2.5)
        collect_files_pages(exp, outputs, "after emptying the key file")
        response = requests.post(exp.url + "/-/reload", timeout=10)
        outputs.add_response("POST /-/reload with an empty key file", response)
        assert response.status_code == 500
    finally:
        assert exp.stop() == 0
        sim.stop()
    log = exp.output()
    outputs.add("exporter log (debug, json)", log)
    assert "new keys loaded" in log and "could not be re-read" in log, log


def collect_files_pages(exp: Exporter, out: Outputs, when: str) -> None:
    for path in PAGES:
        out.add_response(f"{when} GET {path}", requests.get(exp.url + path, timeout=5))


def test_bad_configs_and_config_check_never_print_a_secret(tmp_path: Path,
                                                           outputs: Outputs) -> None:
    """Exit-2 starts, --config.check (valid and not) and credential errors print no secret."""
    sim = Simulator(tmp_path, scenario())
    try:
        good, bad = tmp_path / "good.yml", tmp_path / "bad.yml"
        good.write_text(yaml.safe_dump(config(sim, ["t-good"])))
        bad.write_text(broken_config_text(sim))
        broken_yaml = tmp_path / "broken-yaml.yml"
        broken_yaml.write_text(f"api:\n  credentials: {{secret_key: {ENV_KEY}\n"
                               f"  token: [{ENV_TOKEN}\n")
        web = write_web_config(tmp_path, hashed=PASSWORD)
        half_env = {"TENCENTCLOUD_SECRET_ID": "", "TENCENTCLOUD_SECRET_KEY": ENV_KEY,
                    "TENCENTCLOUD_SESSION_TOKEN": ENV_TOKEN}
        runs = {
            "start with a bad config": (["--config.file", str(bad)], ENV, 2),
            "start with broken YAML": (["--config.file", str(broken_yaml)], ENV, 2),
            "check a good config": (["--config.file", str(good), "--config.check"], ENV, 0),
            "check a bad config": (["--config.file", str(bad), "--config.check"], ENV, 2),
            "start with only the key set": (["--config.file", str(good)], half_env, 2),
            "start with the password as its hash": (
                ["--config.file", str(good), "--web.listen-address", "127.0.0.1:0",
                 "--web.config.file", str(web)], ENV, 2),
        }
        for name, (args, env, code) in runs.items():
            result = run_cli(*args, "--log.level", "debug", env=env)
            outputs.add(f"{name}: stdout", result.stdout)
            outputs.add(f"{name}: stderr", result.stderr)
            assert result.returncode == code, (name, result.stdout, result.stderr)
            assert code == 0 or result.stderr.strip(), name  # an error was printed
    finally:
        sim.stop()


@pytest.mark.parametrize(("variable", "value"), [
    ("TENCENTCLOUD_SESSION_TOKEN", ENV_TOKEN + "\u2603"),
    ("TENCENTCLOUD_SECRET_ID", ENV_ID + "\u200b"),  # a zero-width space pasted from a console
], ids=["token-with-snowman", "secret-id-with-zero-width-space"])
def test_credentials_no_header_can_carry_are_refused_at_start(
        tmp_path: Path, outputs: Outputs, variable: str, value: str) -> None:
    """A credential with a non-Latin-1 character exits 2 naming its source, not the value."""
    (tmp_path / "exp").mkdir()
    endpoint = {"endpoint": "http://127.0.0.1:9", "max_retries": 0}
    exp = Exporter(tmp_path / "exp", {"api": endpoint, "poll_interval": "1s",
                                      "targets": [{"task_id": "t1"}]},
                   env={**ENV, variable: value}, wait_ready=False)
    with contextlib.suppress(subprocess.TimeoutExpired):
        exp.proc.wait(timeout=5)
    running = exp.proc.poll() is None
    code = exp.stop()
    log = exp.output()
    outputs.add(f"exporter log with a bad {variable}", log)
    assert "Traceback" not in log, log  # a polling thread died of it before
    assert not running and code == 2, f"still polling (blind) with an unusable {variable}:\n{log}"
    assert variable in log
