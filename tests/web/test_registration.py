"""Registration API, probe registration and hot reload, through a real server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.apimock import ApiMock, Sent
from tests.conftest import ENDPOINT, SECRET_ID, SECRET_KEY, answer, poll_all
from trtc_exporter.api.credentials import Credentials, StaticProvider
from trtc_exporter.app import Exporter
from trtc_exporter.clock import FakeClock
from trtc_exporter.config.model import load_config, parse_config
from trtc_exporter.errors import ConfigError
from trtc_exporter.secret import Secret
from trtc_exporter.target import Target
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer
from trtc_exporter.web.toolkit.webconfig import WebConfigStore

TOKEN = "registration-token-0123456789"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
USER, PASSWORD = "admin", "basic-password"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
IDENTITY = {"api": "ai_transcription", "region": "ap-guangzhou", "task_id": "",
            "sdk_app_id": "", "session_id": ""}


class Stack:
    """An exporter built from a config file in tmp, served on 127.0.0.1, with a fake clock."""

    def __init__(self, tmp: Path, raw: dict[str, Any], web: str | None = None,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.tmp = tmp
        self.clock = FakeClock(auto_advance=True)  # budget waits in poll_all move time
        self.config_path = tmp / "exporter.yml"
        self.write_config(raw)
        creds = StaticProvider(Credentials(Secret(SECRET_ID), Secret(SECRET_KEY)), "env")
        self.exporter = Exporter(load_config(self.config_path), creds, clock=self.clock,
                                 config_path=str(self.config_path), shard=shard)
        store = None
        if web is not None:
            (tmp / "web.yml").write_text(web)
            store = WebConfigStore(str(tmp / "web.yml"))
        self.server = ExporterHTTPServer(("127.0.0.1", 0),
                                         handler_class(Routes(self.exporter, lifecycle=True)),
                                         store)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def write_config(self, raw: dict[str, Any]) -> None:
        full = {"api": {"endpoint": ENDPOINT, "max_retries": 0}, **raw}
        self.config_path.write_text(yaml.safe_dump(full))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.exporter.sources.close()

    def post(self, body: object, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(self.url + "/api/v1/targets", json=body,
                             headers=BEARER if headers is None else headers, timeout=5)

    def delete(self, target_id: str, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.delete(f"{self.url}/api/v1/targets/{target_id}",
                               headers=BEARER if headers is None else headers, timeout=5)

    def rows(self) -> dict[str, dict[str, Any]]:
        data = requests.get(self.url + "/api/v1/targets", timeout=5).json()["data"]
        return {r["task_id"] or r["session_id"]: r for r in data}

    def scrape(self, path: str = "/metrics") -> list[tuple[str, dict[str, str], float]]:
        text = requests.get(self.url + path, timeout=5).text
        return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
                for s in family.samples]

    def value(self, name: str, **labels: str) -> float | None:
        return self.exporter.registry.get_sample_value(name, labels)

    def maintain(self) -> None:
        """One pass of the exporter's maintenance loop."""
        self.exporter.maintain_once()


@pytest.fixture
def stacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Stack]]:
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)  # what a reload resolves
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    made: list[Stack] = []

    def make(raw: dict[str, Any], web: str | None = None,
             shard: tuple[int, int] = (0, 1)) -> Stack:
        made.append(Stack(tmp_path, raw, web, shard))
        return made[-1]

    yield make
    for stack in made:
        stack.close()


def registration(tmp_path: Path, token: bool = True, **extra: Any) -> dict[str, Any]:
    reg: dict[str, Any] = {"enabled": True, "db_path": str(tmp_path / "db" / "targets.db"),
                           **extra}
    if token:
        (tmp_path / "token").write_text(TOKEN + "\n")
        reg["bearer_token_file"] = str(tmp_path / "token")
    return reg


@pytest.fixture
def api(tmp_path: Path, stacks: Callable[..., Stack]) -> Stack:
    """Registration enabled with a bearer token and one config target."""
    return stacks({"targets": [{"task_id": "c-1"}], "registration": registration(tmp_path)})


def fake_trtc(mock: ApiMock, status: str = "InProgress") -> None:
    def respond(request: Sent) -> tuple[int, dict[str, str], str]:
        task_id = json.loads(request.body or b"{}").get("TaskId") or "resolved"
        return 200, {}, json.dumps(answer(status, task_id))

    mock.add_callback("POST", ENDPOINT + "/", callback=respond)


def trtc_calls(mock: ApiMock) -> int:
    return sum(1 for call in mock.calls if call.request.url.startswith(ENDPOINT))


def assert_unique_series(samples: list[tuple[str, dict[str, str], float]]) -> None:
    seen = [(name, tuple(sorted(labels.items()))) for name, labels, _ in samples]
    assert len(seen) == len(set(seen)), "duplicate series in a scrape"


# -- authorisation ------------------------------------------------------------------------------

def test_writes_are_forbidden_while_registration_is_disabled(stacks: Callable[..., Stack]) -> None:
    """POST and DELETE answer 403 naming registration.enabled unless it is on."""
    stack = stacks({"targets": [{"task_id": "c-1"}]})
    for response in (stack.post({"task_id": "a"}), stack.delete("0123456789abcdef")):
        assert response.status_code == 403
        assert response.json() == {"status": "error", "errors": [
            "registration is disabled (registration.enabled)"]}
    assert set(stack.rows()) == {"c-1"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": TOKEN},
                                     {"Authorization": f"Basic {TOKEN}"}],
                         ids=["none", "wrong-token", "no-scheme", "basic-scheme"])
def test_writes_need_the_bearer_token(api: Stack, headers: dict[str, str]) -> None:
    """Without the exact bearer token POST and DELETE are 401 with a Bearer challenge."""
    for response in (api.post({"task_id": "a"}, headers), api.delete("x", headers)):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="trtc-exporter"'
    assert set(api.rows()) == {"c-1"}


def test_reading_the_target_list_needs_no_token(api: Stack) -> None:
    """GET /api/v1/targets stays readable like /metrics (only writes are protected)."""
    assert requests.get(api.url + "/api/v1/targets", timeout=5).status_code == 200


def test_registration_without_any_authentication_fails_closed(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """Enabled (e.g. by a reload) with neither token nor basic auth, writes are refused."""
    stack = stacks({"registration": registration(tmp_path, token=False)})
    response = stack.post({"task_id": "a"}, headers={})
    assert response.status_code == 403
    assert response.json()["errors"] == ["registration needs authentication: set "
                                         "registration.bearer_token_file or basic_auth_users "
                                         "in --web.config.file"]
    assert stack.rows() == {}


def test_basic_auth_of_the_web_config_protects_registration(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """With basic_auth_users and no token, the web config's basic auth admits registrations."""
    stack = stacks({"registration": registration(tmp_path, token=False)},
                   web=f"basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n")
    anonymous = requests.post(stack.url + "/api/v1/targets", json={"task_id": "a"}, timeout=5)
    assert anonymous.status_code == 401
    ok = requests.post(stack.url + "/api/v1/targets", json={"task_id": "a"},
                       auth=(USER, PASSWORD), timeout=5)
    assert ok.status_code == 200
    assert "a" in {r["task_id"] for r in requests.get(
        stack.url + "/api/v1/targets", auth=(USER, PASSWORD), timeout=5).json()["data"]}


def test_bearer_token_works_when_basic_auth_is_also_configured(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """With basic auth and a token, a registration carrying the token is accepted."""
    stack = stacks({"registration": registration(tmp_path)},
                   web=f"basic_auth_users:\n  {USER}: {PASSWORD_HASH}\n")
    assert stack.post({"task_id": "a"}).status_code == 200
    basic_only = requests.post(stack.url + "/api/v1/targets", json={"task_id": "b"},
                               auth=(USER, PASSWORD), timeout=5)
    assert basic_only.status_code == 401


def test_a_refused_body_is_not_read_as_the_next_request(api: Stack) -> None:
    """A 401 closes the connection, so a body carrying a request is never executed."""
    smuggled = b"DELETE /api/v1/targets/x HTTP/1.1\r\nHost: x\r\n\r\n"
    head = (f"POST /api/v1/targets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(smuggled)}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", api.server.server_address[1]), 5) as sock:
        sock.sendall(head + smuggled)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 ") == 1
    assert received.startswith(b"HTTP/1.1 401")


def exchange(port: int, request: bytes) -> tuple[bytes, bool]:
    """Send one request, read one response (by Content-Length); True if the server then closed."""
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next((line.split(b":")[1] for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), b"0"))
        while len(body) < length:
            body += sock.recv(65536)
        sock.settimeout(2)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    return head, closed


def test_a_closing_answer_says_connection_close(api: Stack) -> None:
    """When the server closes after an answer it says so, so keep-alive clients do not fail."""
    body = b'{"task_id": "a-1"}'
    for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
        request = (b"POST /api/v1/targets HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   b"application/json\r\n" + b"".join(f"{k}: {v}\r\n".encode()
                                                      for k, v in headers.items()) +
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head, closed = exchange(api.server.server_address[1], request)
        if closed:
            assert b"\r\nconnection: close" in head.lower(), head.decode()


# -- registering --------------------------------------------------------------------------------

def test_post_one_target_shows_it_with_source_and_no_expiry(api: Stack) -> None:
    """A single target object registers; the list shows source "api" and expires_at null."""
    response = api.post({"task_id": "a-1", "labels": {"team": "live"}})
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["registered"], data["new"]) == (1, 1)
    rows = api.rows()
    assert (rows["a-1"]["source"], rows["a-1"]["expires_at"]) == ("api", None)
    assert rows["a-1"]["labels"] == {"team": "live"}
    assert rows["a-1"]["id"] == data["ids"][0]
    assert rows["c-1"]["source"] == "config"


def test_post_many_with_a_ttl_sets_expires_at(api: Stack) -> None:
    """{"targets": [...], "ttl": "1h"} registers all of them expiring one hour from now."""
    body = {"targets": [{"task_id": "a-1"}, {"sdk_app_id": 1400000001, "session_id": "room"},
                        {"api": "cloud_transcription", "task_id": "c-2",
                         "sdk_app_id": 1400000002, "region": "ap-hongkong"}], "ttl": "1h"}
    assert api.post(body).json()["data"]["new"] == 3
    rows = api.rows()
    for name in ("a-1", "room", "c-2"):
        assert rows[name]["expires_at"] == api.clock.time() + 3600
    assert api.post([{"task_id": "a-2"}, {"task_id": "a-3"}]).json()["data"]["new"] == 2


def test_registration_is_idempotent_by_identity(api: Stack) -> None:
    """POSTing the same target twice keeps one target and reports it as not new."""
    first = api.post({"task_id": "a-1"}).json()["data"]
    second = api.post({"task_id": "a-1"}).json()["data"]
    assert (first["new"], second["new"]) == (1, 0)
    assert first["ids"] == second["ids"]
    assert sorted(api.rows()) == ["a-1", "c-1"]
    assert api.post({"task_id": "c-1"}).json()["data"]["new"] == 0  # already in the config


def test_default_ttl_applies_when_the_request_names_none(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """registration.default_ttl gives every registration without its own ttl an expiry."""
    stack = stacks({"registration": registration(tmp_path, default_ttl="10m")})
    stack.post({"task_id": "a-1"})
    stack.post({"targets": [{"task_id": "a-2"}], "ttl": "1m"})
    rows = stack.rows()
    assert rows["a-1"]["expires_at"] == stack.clock.time() + 600
    assert rows["a-2"]["expires_at"] == stack.clock.time() + 60


def test_ttl_expiry_removes_the_target_and_counts_it(api: Stack) -> None:
    """After its TTL a registration disappears from the list, the poller and the database."""
    api.post({"targets": [{"task_id": "a-1"}], "ttl": "30s"})
    api.clock.advance(29.0)
    api.maintain()
    assert "a-1" in api.rows()
    api.clock.advance(1.0)
    api.maintain()
    assert "a-1" not in api.rows()
    assert [t.task_id for t in api.exporter.poller.targets()] == ["c-1"]
    assert api.value("trtc_exporter_target_changes_total", change="expired", source="api") == 1
    with sqlite3.connect(api.tmp / "db" / "targets.db") as conn:
        assert conn.execute("SELECT count(*) FROM targets").fetchone() == (0,)


def test_delete_by_id(api: Stack) -> None:
    """DELETE removes a registration; a second DELETE is 404, a config target's id 409."""
    target_id = api.post({"task_id": "a-1"}).json()["data"]["ids"][0]
    response = api.delete(target_id)
    assert response.status_code == 200
    assert response.json()["data"] == {"deleted": target_id}
    assert "a-1" not in api.rows()
    missing = api.delete(target_id)
    assert missing.status_code == 404
    assert missing.json()["errors"] == [f"no registered target with id {target_id}"]
    config_id = api.rows()["c-1"]["id"]
    refused = api.delete(config_id)
    assert refused.status_code == 409  # config is not deletable, and the answer says where
    assert refused.json()["errors"] == [
        f"target {config_id} comes from the config file; remove it there"]
    assert api.value("trtc_exporter_target_changes_total", change="removed", source="api") == 1


def test_registrations_are_written_to_the_wal_database(api: Stack) -> None:
    """Each accepted POST is in the SQLite file (WAL mode) before the answer is sent."""
    api.post({"targets": [{"task_id": "a-1"}, {"task_id": "a-2"}], "ttl": "1h"})
    with sqlite3.connect(api.tmp / "db" / "targets.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = conn.execute("SELECT spec, expires_at FROM targets ORDER BY spec").fetchall()
    assert [json.loads(spec)["task_id"] for spec, _ in rows] == ["a-1", "a-2"]
    assert {expires for _, expires in rows} == {api.clock.time() + 3600}


# -- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", [
    {"sdk_app_id": "1400", "session_id": "room"},
    {"task_id": "t", "session_id": "room"},
    {"task_id": "t", "labels": {"job": "x"}},
    {"task_id": "t", "region": "eu-frankfurt"},
    {"task_id": "t", "tasks_id": "t"},
    {"api": "cloud_transcription", "task_id": "t"},
    "t-1",
], ids=["app-id-string", "both", "reserved-label", "region", "unknown-field", "2.0-no-app",
        "not-mapping"])
def test_validation_is_the_config_files_own(api: Stack, entry: object) -> None:
    """A bad target gets 400 with exactly the message the config file would give."""
    response = api.post([{"task_id": "fine"}, entry])
    with pytest.raises(ConfigError) as caught:
        parse_config({"targets": [{"task_id": "fine"}, entry]})
    assert response.status_code == 400
    assert response.json() == {"status": "error", "errors": caught.value.lines}
    assert caught.value.lines[0].startswith("targets[1]")
    assert "fine" not in api.rows()  # nothing of a rejected request is registered


def test_error_messages_name_the_field(api: Stack) -> None:
    """The field path is in the message, e.g. targets[0].sdk_app_id for a single object."""
    response = api.post({"sdk_app_id": "abc", "session_id": "room"})
    assert response.json()["errors"] == ["targets[0].sdk_app_id: must be an integer, "
                                         "got string"]


@pytest.mark.parametrize(("body", "errors"), [
    (b"{not json", ["body: not valid JSON"]),
    (b"\xff\xfe", ["body: not valid JSON"]),
    (b"[" * 100_000, ["body: not valid JSON"]),
    (b'"text"', ["targets: must be a list of targets"]),
    (b'{"targets": [], "ttl": "1h", "extra": 1}', ["extra: unknown field"]),
    (b'{"targets": [], "ttl": "soon"}', ['ttl: not a valid duration string: "soon"']),
    (b'{"targets": [], "ttl": 3600}', ['ttl: must be a duration string like "15s", '
                                       'got integer']),
    (b'{"targets": [], "ttl": "0s"}', ['ttl: must be > 0, got "0s"']),
    (b'{"targets": {"task_id": "t"}}', ["targets: must be a list of targets"]),
    (b'{"task_id": "a", "task_id": "b"}',
     ["body: not valid JSON: key 'task_id' appears twice in one object"]),
    (b'{"targets": [{"task_id": "a"}], "targets": []}',
     ["body: not valid JSON: key 'targets' appears twice in one object"]),
    (b'{"task_id": "a", "sdk_app_id": Infinity}',
     ["body: not valid JSON: Infinity is not a JSON number"]),
], ids=["syntax", "not-utf8", "nested", "string", "extra-field", "ttl-syntax", "ttl-number",
        "ttl-zero", "targets-mapping", "key-twice", "targets-twice", "infinity"])
def test_malformed_bodies_are_400_with_the_problem(api: Stack, body: bytes,
                                                   errors: list[str]) -> None:
    """Bodies that are not a target list, or carry a bad ttl, are 400 naming the problem."""
    response = requests.post(api.url + "/api/v1/targets", data=body, headers=BEARER, timeout=10)
    assert response.status_code == 400
    assert response.json()["errors"] == errors


def test_an_empty_body_is_400(api: Stack) -> None:
    """POST without a body answers 400 asking for one."""
    response = requests.post(api.url + "/api/v1/targets", headers=BEARER, timeout=5)
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith("body: need a JSON body")


# -- cardinality guard --------------------------------------------------------------------------

def test_registration_past_max_targets_is_429_and_counted(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """Past max_targets the API answers 429 with a message; nothing is dropped silently."""
    stack = stacks({"targets": [{"task_id": "c-1"}], "max_targets": 3,
                    "registration": registration(tmp_path)})
    assert stack.post([{"task_id": "a-1"}]).status_code == 200
    response = stack.post([{"task_id": "a-2"}, {"task_id": "a-3"}])
    assert response.status_code == 429
    assert response.json()["errors"] == ["max_targets (3) reached: 2 targets, 2 new would "
                                         "exceed it"]
    assert sorted(stack.rows()) == ["a-1", "c-1"]
    assert stack.value("trtc_exporter_target_changes_total", change="refused",
                       source="api") == 2
    assert stack.post([{"task_id": "a-2"}]).status_code == 200


def test_file_targets_past_max_targets_are_counted_as_refused(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """Target-file entries beyond max_targets are counted under change="refused",source="file"."""
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "t.yml").write_text("- task_id: f-1\n- task_id: f-2\n- task_id: f-3\n")
    stack = stacks({"targets": [{"task_id": "c-1"}], "max_targets": 3,
                    "target_files": [str(tmp_path / "sd" / "*.yml")]})
    assert sorted(stack.rows()) == ["c-1", "f-1", "f-2"]
    assert stack.value("trtc_exporter_target_changes_total", change="refused",
                       source="file") == 1
    assert stack.value("trtc_exporter_targets", source="file") == 2


# -- probe --------------------------------------------------------------------------------------

def probe_registering(tmp_path: Path, stacks: Callable[..., Stack]) -> Stack:
    return stacks({"targets": [{"task_id": "c-1"}],
                   "registration": registration(tmp_path, allow_probe_registration=True,
                                                probe_ttl="10m")})


def test_probe_answers_from_the_cache(api: Stack) -> None:
    """/probe?task_id= shows the polled target's series with probe_success 1, no API call."""
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        fake_trtc(mock)
        poll_all(api.exporter)
        polls = trtc_calls(mock)
        samples = api.scrape("/probe?task_id=c-1")
        assert trtc_calls(mock) == polls
    assert ("probe_success", {}, 1.0) in samples
    assert ("trtc_ai_transcription_status", {**IDENTITY, "task_id": "c-1",
                                             "status": "InProgress"}, 1.0) in samples
    assert_unique_series(samples)


def test_probe_of_an_unknown_target_does_not_register_by_default(api: Stack) -> None:
    """Without allow_probe_registration an unknown probe is probe_success 0 and nothing more."""
    samples = api.scrape("/probe?task_id=unknown")
    assert ("probe_success", {}, 0.0) in samples
    assert "unknown" not in api.rows()


def test_probe_registers_an_unknown_task_then_answers_after_a_poll(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """First probe: registered, probe_success 0, no API request; after a poll: probe_success 1."""
    stack = probe_registering(tmp_path, stacks)
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        fake_trtc(mock)
        first = stack.scrape("/probe?task_id=p-1")
        assert trtc_calls(mock) == 0
        assert ("probe_success", {}, 0.0) in first
        row = stack.rows()["p-1"]
        assert (row["source"], row["expires_at"]) == ("api", stack.clock.time() + 600)
        poll_all(stack.exporter)
        assert trtc_calls(mock) == 2  # the poller, not the probe, asked for c-1 and p-1
        second = stack.scrape("/probe?task_id=p-1")
        assert trtc_calls(mock) == 2
    assert ("probe_success", {}, 1.0) in second
    assert ("trtc_ai_transcription_status", {**IDENTITY, "task_id": "p-1",
                                             "status": "InProgress"}, 1.0) in second


def test_probe_registers_an_unknown_session(tmp_path: Path,
                                            stacks: Callable[..., Stack]) -> None:
    """/probe?sdk_app_id=&session_id= registers a session target the same way."""
    stack = probe_registering(tmp_path, stacks)
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        fake_trtc(mock)
        url = "/probe?sdk_app_id=1400000001&session_id=room-9"
        assert ("probe_success", {}, 0.0) in stack.scrape(url)
        assert trtc_calls(mock) == 0
        poll_all(stack.exporter)
        samples = stack.scrape(url)
    assert ("probe_success", {}, 1.0) in samples
    assert ("trtc_ai_transcription_info", {**IDENTITY, "sdk_app_id": "1400000001",
                                           "session_id": "room-9",
                                           "resolved_task_id": "resolved"}, 1.0) in samples


def test_probing_again_extends_a_probe_registration(tmp_path: Path,
                                                    stacks: Callable[..., Stack]) -> None:
    """A probe-registered target probed with under half its TTL left gets a fresh TTL."""
    stack = probe_registering(tmp_path, stacks)
    stack.scrape("/probe?task_id=p-1")
    registered_at = stack.clock.time()
    stack.clock.advance(200.0)
    stack.scrape("/probe?task_id=p-1")  # 400 s of 600 s left: unchanged
    assert stack.rows()["p-1"]["expires_at"] == registered_at + 600
    stack.clock.advance(150.0)
    stack.scrape("/probe?task_id=p-1")  # 250 s left: extended
    assert stack.rows()["p-1"]["expires_at"] == stack.clock.time() + 600
    stack.clock.advance(599.0)
    stack.maintain()
    assert "p-1" in stack.rows()


def test_probe_never_shortens_a_permanent_registration(tmp_path: Path,
                                                       stacks: Callable[..., Stack]) -> None:
    """Probing a config target or a registration without TTL leaves it without expiry."""
    stack = probe_registering(tmp_path, stacks)
    stack.post({"task_id": "a-1"})
    stack.scrape("/probe?task_id=a-1")
    stack.scrape("/probe?task_id=c-1")
    rows = stack.rows()
    assert (rows["a-1"]["expires_at"], rows["c-1"]["expires_at"]) == (None, None)
    assert rows["c-1"]["source"] == "config"


def test_probing_a_target_of_another_shard_writes_it_once(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """A probe-registered target polled by another shard is not re-written on every probe."""
    probed = Target(api="ai_transcription", region="ap-guangzhou", task_id="p-1")
    other = 1 - int(probed.id, 16) % 2
    stack = stacks({"registration": registration(tmp_path, allow_probe_registration=True,
                                                 probe_ttl="10m")}, shard=(other, 2))
    stack.scrape("/probe?task_id=p-1")
    first = stack.exporter.sources.target_set.registered(probed.key)
    stack.clock.advance(60.0)
    stack.scrape("/probe?task_id=p-1")
    assert "p-1" not in stack.rows()  # not this replica's to poll
    assert first is not None
    assert stack.exporter.sources.target_set.registered(probed.key) == first
    with sqlite3.connect(tmp_path / "db" / "targets.db") as conn:
        assert conn.execute("SELECT expires_at FROM targets").fetchall() == [
            (first.expires_at,)]


def test_invalid_probe_parameters_register_nothing(tmp_path: Path,
                                                   stacks: Callable[..., Stack]) -> None:
    """A probe whose parameters are not a valid target is refused (a malformed SdkAppId: 400)
    or answered with probe_success 0 (an unknown region), and not stored."""
    stack = probe_registering(tmp_path, stacks)
    refused = requests.get(f"{stack.url}/probe?sdk_app_id=abc&session_id=room", timeout=5)
    assert refused.status_code == 400
    assert ("probe_success", {}, 0.0) in stack.scrape("/probe?task_id=x&region=mars")
    assert stack.scrape("/probe?task_id=x&region=mars") and "x" not in stack.rows()
    assert sorted(stack.rows()) == ["c-1"]


def test_probe_registration_respects_max_targets(tmp_path: Path,
                                                 stacks: Callable[..., Stack]) -> None:
    """At max_targets a probe of an unknown target is refused (counted), still answering 200."""
    stack = stacks({"targets": [{"task_id": "c-1"}], "max_targets": 1,
                    "registration": registration(tmp_path, allow_probe_registration=True)})
    response = requests.get(stack.url + "/probe?task_id=p-1", timeout=5)
    assert response.status_code == 200
    assert "probe_success 0.0" in response.text
    assert stack.value("trtc_exporter_target_changes_total", change="refused",
                       source="api") == 1


# -- reload -------------------------------------------------------------------------------------

def status_change_time(stack: Stack, task_id: str) -> float | None:
    return stack.value("trtc_ai_transcription_status_change_time_seconds",
                       **{**IDENTITY, "task_id": task_id})


def test_reload_swaps_targets_and_survivors_keep_their_state(
        stacks: Callable[..., Stack]) -> None:
    """A good reload polls new targets, drops removed series and keeps survivors' state."""
    stack = stacks({"targets": [{"task_id": "keep"}, {"task_id": "gone"}]})
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        fake_trtc(mock)
        poll_all(stack.exporter)
        changed_at = status_change_time(stack, "keep")
        before = stack.value("trtc_exporter_config_last_reload_success_time_seconds")
        stack.clock.advance(60.0)
        reloaded_at = stack.clock.time()
        stack.write_config({"targets": [{"task_id": "keep"}, {"task_id": "new"}]})
        response = requests.post(stack.url + "/-/reload", timeout=5)
        assert response.status_code == 200
        samples = stack.scrape()
        assert_unique_series(samples)
        assert not [s for s in samples if s[1].get("task_id") == "gone"]
        assert ("trtc_ai_transcription_status", {**IDENTITY, "task_id": "new",
                                                 "status": "Unknown"}, 1.0) in samples
        assert status_change_time(stack, "keep") == changed_at
        assert stack.value("trtc_exporter_config_last_reload_successful") == 1
        moved = stack.value("trtc_exporter_config_last_reload_success_time_seconds")
        assert moved == reloaded_at > before
        mock.calls.reset()
        poll_all(stack.exporter)
        asked = sorted(json.loads(c.request.body)["TaskId"] for c in mock.calls
                       if c.request.url.startswith(ENDPOINT))
    assert asked == ["keep", "new"]
    assert status_change_time(stack, "keep") == changed_at
    assert_unique_series(stack.scrape())


def test_a_broken_reload_is_rejected_and_the_old_targets_stay(
        stacks: Callable[..., Stack]) -> None:
    """A broken config answers non-2xx with the error, sets the gauge to 0, keeps polling."""
    stack = stacks({"targets": [{"task_id": "keep"}]})
    before = stack.value("trtc_exporter_config_last_reload_success_time_seconds")
    stack.clock.advance(60.0)
    stack.write_config({"targets": [{"task_id": "keep"}, {"sdk_app_id": "x",
                                                          "session_id": "s"}]})
    response = requests.post(stack.url + "/-/reload", timeout=5)
    assert response.status_code == 500
    assert response.json()["errors"] == ["targets[1].sdk_app_id: must be an integer, got string"]
    assert stack.value("trtc_exporter_config_last_reload_successful") == 0
    assert stack.value("trtc_exporter_config_last_reload_success_time_seconds") == before
    assert [t.task_id for t in stack.exporter.poller.targets()] == ["keep"]
    stack.write_config({"targets": [{"task_id": "keep"}]})
    assert requests.post(stack.url + "/-/reload", timeout=5).status_code == 200
    assert stack.value("trtc_exporter_config_last_reload_successful") == 1


def test_reload_rereads_target_files_at_once(tmp_path: Path,
                                             stacks: Callable[..., Stack]) -> None:
    """/-/reload re-reads target files even before their refresh interval is due."""
    path = tmp_path / "t.yml"
    path.write_text("- task_id: f-1\n")
    stack = stacks({"target_files": [str(path)], "target_files_refresh_interval": "1h"})
    path.write_text("- task_id: f-2\n")
    stack.maintain()
    assert sorted(stack.rows()) == ["f-1"]
    assert requests.post(stack.url + "/-/reload", timeout=5).status_code == 200
    assert sorted(stack.rows()) == ["f-2"]


def test_reload_keeps_registered_targets(api: Stack) -> None:
    """Registered targets survive a config reload with their expiry."""
    api.post({"targets": [{"task_id": "a-1"}], "ttl": "1h"})
    expires = api.rows()["a-1"]["expires_at"]
    config = yaml.safe_load(api.config_path.read_text())
    config["targets"] = [{"task_id": "c-2"}]
    api.config_path.write_text(yaml.safe_dump(config))
    assert requests.post(api.url + "/-/reload", timeout=5).status_code == 200
    rows = api.rows()
    assert sorted(rows) == ["a-1", "c-2"]
    assert rows["a-1"]["expires_at"] == expires


def test_no_duplicate_series_with_every_source_overlapping(
        tmp_path: Path, stacks: Callable[..., Stack]) -> None:
    """The same identity in config, a file and the API is one set of series in every scrape."""
    (tmp_path / "sd").mkdir()
    (tmp_path / "sd" / "t.yml").write_text("- task_id: x\n  labels: {team: file}\n"
                                           "- task_id: y\n")
    stack = stacks({"targets": [{"task_id": "x", "labels": {"team": "config"}}],
                    "target_files": [str(tmp_path / "sd" / "*.yml")],
                    "registration": registration(tmp_path)})
    stack.post([{"task_id": "x"}, {"task_id": "y"}, {"task_id": "z"}])
    with ApiMock(assert_all_requests_are_fired=False) as mock:
        fake_trtc(mock)
        poll_all(stack.exporter)
    samples = stack.scrape()
    assert_unique_series(samples)
    statuses = [labels for name, labels, value in samples
                if name == "trtc_ai_transcription_status" and value == 1]
    assert sorted((s["task_id"], s["team"]) for s in statuses) == [
        ("x", "config"), ("y", ""), ("z", "")]
    assert requests.post(stack.url + "/-/reload", timeout=5).status_code == 200
    assert_unique_series(stack.scrape())


# -- one task under two identities (issue 15 item 1) ------------------------------------------

def test_same_task_with_and_without_app_is_refused_with_409(api: Stack) -> None:
    """A 1.0 TaskId registered without sdk_app_id, then with one, is a 409 naming both."""
    assert api.post({"task_id": "t1"}).status_code == 200
    response = api.post({"task_id": "t1", "sdk_app_id": 1400000001})
    assert response.status_code == 409
    [error] = response.json()["errors"]
    assert error.startswith("targets[0]: the same task t1 as the api target ")
    assert "(sdk_app_id unset there, 1400000001 here)" in error
    assert requests.get(api.url + "/", timeout=5).status_code == 200
    assert [r["sdk_app_id"] for r in api.rows().values() if r["task_id"] == "t1"] == [None]


def test_two_probes_of_one_task_register_it_once(tmp_path: Path,
                                                 stacks: Callable[..., Stack]) -> None:
    """/probe?task_id=t1 then /probe?task_id=t1&sdk_app_id=… keep one target; pages stay 200."""
    stack = probe_registering(tmp_path, stacks)
    stack.scrape("/probe?task_id=t1")
    stack.scrape("/probe?task_id=t1&sdk_app_id=1400000001")
    assert requests.get(stack.url + "/", timeout=5).status_code == 200
    data = requests.get(stack.url + "/api/v1/targets", timeout=5).json()["data"]
    assert [(r["task_id"], r["sdk_app_id"]) for r in data] == [("c-1", None), ("t1", None)]


def test_both_forms_stored_by_an_older_release_still_list(tmp_path: Path,
                                                          stacks: Callable[..., Stack]) -> None:
    """A database holding t1 with and without sdk_app_id: / and the JSON list answer 200."""
    from trtc_exporter.targets.registrations import Registered, RegistrationStore
    reg = registration(tmp_path)
    store = RegistrationStore(reg["db_path"])
    both = [Target(api="ai_transcription", region="ap-guangzhou", task_id="t1", sdk_app_id=app,
                   source="api") for app in (None, 1400000001)]
    store.upsert([Registered(t, 0.0, None) for t in both])
    store.close()
    stack = stacks({"targets": [{"task_id": "c-1", "sdk_app_id": 7}], "registration": reg})
    assert requests.get(stack.url + "/", timeout=5).status_code == 200
    data = requests.get(stack.url + "/api/v1/targets", timeout=5).json()["data"]
    assert [(r["task_id"], r["sdk_app_id"]) for r in data] == [("c-1", 7), ("t1", None)]
