"""Fuzzing with hypothesis: the web-config loader and the HTTP request handling of the exporter.

The config loader and the API response parser have their own fuzz tests (test_config.py,
test_response.py). Here arbitrary YAML documents must give a WebConfig or a WebConfigError, and
arbitrary requests to the real server (no TLS, with and without basic auth) must get a deliberate
status, never a 500, never silence, and leave the server serving.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import bcrypt
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.apimock import ApiMock
from tests.conftest import ENDPOINT, answer, build_exporter, poll_all
from trtc_exporter.clock import FakeClock
from trtc_exporter.web.routes import Routes, handler_class
from trtc_exporter.web.toolkit.server import ExporterHTTPServer
from trtc_exporter.web.toolkit.webconfig import (
    WebConfig,
    WebConfigError,
    WebConfigStore,
    load_web_config,
)

MARKER = "FUZZ-SECRET-MARKER"
PASSWORD = "fuzz-password"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _pem_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(1))
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


CERT, KEY = _pem_pair()

# -- web config ------------------------------------------------------------------------------
TLS_KEYS = ("cert", "key", "client_ca", "cert_file", "key_file", "client_ca_file",
            "client_auth_type", "min_version", "max_version", "client_allowed_sans",
            "cipher_suites", "prefer_server_cipher_suites", "curve_preferences")
WORDS = ("TLS12", "TLS13", "TLS10", "NoClientCert", "RequireAndVerifyClientCert",
         "RequireAnyClientCert", "VerifyClientCertIfGiven", "RequestClientCert", "server.crt",
         "server.key", "absent.pem", "TLS_AES_128_GCM_SHA256", "X25519", "CurveP256", "deny",
         "nosniff", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA",
         "", "/", "..", "server.crt\x00", HASH)
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
           | st.sampled_from(WORDS))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8) | st.sampled_from(TLS_KEYS), inner,
                                        max_size=4), max_leaves=12)
pem_ish = st.sampled_from([CERT, KEY, CERT + KEY, f"-----BEGIN {MARKER}-----", MARKER,
                           "-----BEGIN CERTIFICATE-----\n" + MARKER + "\n-----END CERTIFICATE-----",
                           "-----BEGIN ENCRYPTED PRIVATE KEY-----" + MARKER])
tls_section = st.fixed_dictionaries({}, optional={
    **{k: values | st.sampled_from(WORDS) for k in TLS_KEYS if k not in ("cert", "key")},
    "cert": pem_ish | values, "key": pem_ish | values, "client_ca": pem_ish,
    "client_allowed_sans": st.lists(st.sampled_from(["localhost", "10.0.0.1"]) | st.text()),
    "cipher_suites": st.lists(st.sampled_from(WORDS)), "unknown": values})
headers = st.dictionaries(st.sampled_from(["X-Frame-Options", "X-Content-Type-Options",
                                           "Content-Security-Policy", "Server", "X-XSS-Protection",
                                           "Strict-Transport-Security"]), values | scalars)
documents = st.fixed_dictionaries({}, optional={
    "tls_server_config": tls_section | values,
    "http_server_config": st.fixed_dictionaries({}, optional={"http2": values,
                                                              "headers": headers | values}),
    "basic_auth_users": st.dictionaries(st.text(max_size=10) | st.integers(),
                                        st.sampled_from([HASH, MARKER, HASH[:-1]]) | values,
                                        max_size=3) | values,
    "rate_limit": values, "extra": values}) | values


@pytest.fixture(scope="module")
def web_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a usable server.crt and server.key for the configs that name files."""
    folder = tmp_path_factory.mktemp("webconfig")
    (folder / "server.crt").write_text(CERT)
    (folder / "server.key").write_text(KEY)
    return folder


def _load(path: Path) -> WebConfig | WebConfigError:
    try:
        return load_web_config(str(path))
    except WebConfigError as exc:
        return exc


@FUZZ
@given(document=documents)
@example(document={"tls_server_config": {"cert_file": "server.crt\x00", "key_file": "server.key"}})
@example(document={"tls_server_config": {"cert": "\ud800", "key": KEY}})
def test_web_config_documents_load_or_fail_cleanly(web_dir: Path, document: object) -> None:
    """Any YAML document gives a WebConfig or a WebConfigError, which never quotes a key or cert."""
    path = web_dir / "web.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=False))
    result = _load(path)
    assert isinstance(result, WebConfig | WebConfigError)
    if isinstance(result, WebConfigError):
        assert str(result).strip()
        assert MARKER not in str(result)


@FUZZ
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_web_config_bytes_load_or_fail_cleanly(web_dir: Path, data: bytes) -> None:
    """Arbitrary bytes in the file (broken YAML, bad UTF-8, tabs) give a WebConfigError at worst."""
    path = web_dir / "raw.yml"
    path.write_bytes(data)
    assert isinstance(_load(path), WebConfig | WebConfigError)


@given(name=st.text(min_size=1, max_size=12))
@settings(max_examples=60, deadline=None)
def test_web_config_reload_of_any_file_name_keeps_serving(web_dir: Path, name: str) -> None:
    """A re-read naming any file (NUL bytes included) keeps the last good config in force."""
    path = web_dir / "reload.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"u": HASH}}))
    clock = FakeClock()
    store = WebConfigStore(str(path), clock)
    good = store.current()
    path.write_text(yaml.safe_dump({"tls_server_config": {"cert_file": name, "key_file": name}},
                                   allow_unicode=False)
                    + yaml.safe_dump({"basic_auth_users": {"u": HASH}}))
    clock.advance(2.0)
    assert store.current() is good
    assert store.last_error


# -- HTTP ------------------------------------------------------------------------------------
ALLOWED = {200, 400, 401, 403, 404, 405, 414, 429, 431, 501, 505}
"""Every status a request may get (403: registration or lifecycle is off; 429: too many failed
logins from one address): never 500, never silence."""
PATHS = ("/", "/metrics", "/-/healthy", "/-/ready", "/-/reload", "/probe", "/api/v1/targets",
         "/metrics/", "//metrics", "/%2e%2e/", "/probe/x", "/api/v1/targets/x", "*")
QUERY_KEYS = ("task_id", "sdk_app_id", "session_id", "api", "region", "x", "")
HEADER_NAMES = ("Accept", "Accept-Encoding", "Authorization", "Connection", "Host",
                "Content-Type", "User-Agent", "X-Forwarded-For", "Range", "If-None-Match",
                "Cookie", "Accept-Language")
token = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                       exclude_characters=":"), min_size=1, max_size=16)
header_value = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
accept_values = st.sampled_from([
    "application/openmetrics-text; version=1.0.0", "application/openmetrics-text; version=abc",
    "application/openmetrics-text; version=", "text/plain; version=0.0.4; escaping=values",
    "application/openmetrics-text; escaping=dots; version=2.0.0", "*/*", ";;;,,,", "gzip"])
query = st.lists(st.tuples(st.sampled_from(QUERY_KEYS) | st.text(max_size=6),
                           st.sampled_from(["t1", "s1", "1400000001", "ai_transcription"])
                           | st.text(max_size=12)), max_size=4).map(
    lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs))
raw_query = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=30)
targets = st.builds(lambda p, q: p + (f"?{q}" if q else ""), st.sampled_from(PATHS)
                    | st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                              max_size=30).map(lambda t: "/" + t), query | raw_query)
methods = st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                           "CONNECT", "get", "PRI"]) | token
versions = st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.x", "HTTP/1"])
header_lists = st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | token,
                                  header_value | accept_values), max_size=6)
# RFC 9110 §5.1: a field name is a token; other names are refused with 400, as Go's net/http does
field_name = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=16)
valid_header_lists = st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | field_name,
                                        header_value | accept_values), max_size=6)


class Server:
    """The exporter's real HTTP server on 127.0.0.1:0, in a thread, with a fake-API exporter."""

    clock: FakeClock

    def __init__(self, web_config: Path | None) -> None:
        self.exporter = build_exporter({"targets": [{"task_id": "t1"},
                                                    {"sdk_app_id": 1400000001,
                                                     "session_id": "s1"}]})
        with ApiMock() as mock:
            mock.post(ENDPOINT + "/", json=answer("InProgress", task_id="t1"))
            poll_all(self.exporter)
        store = WebConfigStore(str(web_config)) if web_config else None
        self.httpd = ExporterHTTPServer(("127.0.0.1", 0), handler_class(Routes(self.exporter)),
                                        store)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        if web_config:  # a real scraper logs in before any flood: a cached login always passes
            assert self.still_serves(auth=True)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def exchange(self, request: bytes, head: bool = False) -> tuple[list[int], bytes]:
        """Send raw bytes, half-close; the status of every answer read, and the raw answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        return statuses_of(data, head), data

    def still_serves(self, auth: bool) -> bool:
        header = b"Authorization: Basic " + _basic("admin", PASSWORD) + b"\r\n" if auth else b""
        return self.exchange(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n" + header
                             + b"Connection: close\r\n\r\n")[0] == [200]


def statuses_of(data: bytes, head: bool = False) -> list[int]:
    """The status codes of the HTTP/1.x answers in ``data``, walking bodies by Content-Length."""
    statuses, pos = [], 0
    while data.startswith(b"HTTP/1.", pos) and (end := data.find(b"\r\n\r\n", pos)) >= 0:
        status_line, *fields = data[pos:end].split(b"\r\n")
        status = int(status_line.split()[1])
        length = 0
        for line in fields:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        statuses.append(status)
        pos = end + 4 + (0 if head or status == 100 else length)
    return statuses


def bare_error_status(data: bytes) -> list[int]:
    """The code of the stdlib's error page sent without a status line (HTTP/0.9 style)."""
    match = re.search(rb"<p>Error code: (\d{3})</p>", data)
    return [int(match.group(1))] if match else []


def _basic(user: str, password: str) -> bytes:
    return base64.b64encode(f"{user}:{password}".encode())


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """The server without a web config."""
    srv = Server(None)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server with basic auth (one user, bcrypt cost 4)."""
    path = tmp_path_factory.mktemp("auth") / "web.yml"
    path.write_text(yaml.safe_dump({"basic_auth_users": {"admin": HASH}}))
    srv = Server(path)
    yield srv
    srv.close()


def _request(method: str, target: str, version: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} {version}", *(f"{k}: {v}" for k, v in headers), "", ""]
    return "\r\n".join(lines).encode("latin-1", errors="replace")


@FUZZ
@given(method=methods, target=targets, version=versions, headers=header_lists,
       accept=st.none() | accept_values | header_value)
def test_any_request_gets_a_deliberate_status(server: Server, method: str, target: str,
                                              version: str, headers: list[tuple[str, str]],
                                              accept: str | None) -> None:
    """Arbitrary methods, paths, queries, versions and headers never get a 500 or no answer."""
    headers = headers + ([("Accept", accept)] if accept is not None else [])
    statuses, data = server.exchange(_request(method, target, version, headers),
                                     head=method == "HEAD")
    if not statuses:  # the stdlib answers in HTTP/0.9 style (a bare body) until it knows better
        statuses = bare_error_status(data) or ([200] if version == "HTTP/0.9" else [])
    assert statuses, data[:200]
    assert set(statuses) <= ALLOWED | {100}, statuses
    assert server.still_serves(auth=False)


@FUZZ
@given(method=st.sampled_from(["GET", "HEAD"]),
       target=st.sampled_from(["/metrics", "/probe?task_id=t1", "/probe?sdk_app_id=1400000001"
                                                               "&session_id=s1"]),
       accept=accept_values | header_value, encoding=st.sampled_from(["gzip", "identity", ""])
       | header_value, headers=valid_header_lists)
def test_any_scrape_headers_get_metrics(server: Server, method: str, target: str, accept: str,
                                        encoding: str, headers: list[tuple[str, str]]) -> None:
    """Whatever Accept and Accept-Encoding a scraper sends, /metrics and /probe answer 200."""
    request = _request(method, target, "HTTP/1.1",
                       [("Accept", accept), ("Accept-Encoding", encoding), *headers])
    statuses, _ = server.exchange(request, head=method == "HEAD")
    assert statuses == [200], statuses


credentials = st.sampled_from([("admin", PASSWORD), ("admin", "wrong"), ("nobody", PASSWORD),
                               ("", ""), ("admin", PASSWORD * 10)]) | st.tuples(
    st.text(max_size=10), st.text(max_size=80))
authorization = (credentials.map(lambda c: "Basic " + _basic(*c).decode())
                 | st.sampled_from(["Basic", "Basic ", "Basic !!!", "Bearer x", "basic YTpi",
                                    "Basic " + "A" * 5000, "Basic YWRtaW4=", "Basic gA=="])
                 | header_value)


@FUZZ
@given(method=methods, target=targets, auth=authorization, headers=header_lists)
def test_any_authorization_header_gets_a_deliberate_status(
        auth_server: Server, method: str, target: str, auth: str,
        headers: list[tuple[str, str]]) -> None:
    """With basic auth on, any Authorization header gives 401 or a normal answer, never a 500."""
    request = _request(method, target, "HTTP/1.1", [("Authorization", auth), *headers])
    statuses, _ = auth_server.exchange(request, head=method == "HEAD")
    assert statuses and set(statuses) <= ALLOWED | {100}, statuses
    assert auth_server.still_serves(auth=True)


@FUZZ
@given(data=st.binary(max_size=400))
def test_raw_bytes_never_break_the_server(server: Server, data: bytes) -> None:
    """Arbitrary bytes on the socket get a deliberate status or a closed connection, then the
    server still answers the next client."""
    statuses, _ = server.exchange(data + b"\r\n\r\n")
    assert set(statuses) <= ALLOWED | {100}, statuses
    assert server.still_serves(auth=False)


def test_malformed_accept_version_falls_back_to_the_text_format(server: Server) -> None:
    """An unparsable OpenMetrics version in Accept gets the text format (200), not a 500."""
    statuses, _ = server.exchange(b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: "
                               b"application/openmetrics-text; version=abc\r\n\r\n")
    assert statuses == [200]


def test_a_request_body_is_never_served_as_a_second_request(server: Server) -> None:
    """A body sent with a request on a kept-alive connection is not parsed as a new request."""
    inner = b"GET /api/v1/targets HTTP/1.1\r\nHost: x\r\n\r\n"
    outer = (b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: "
             + str(len(inner)).encode() + b"\r\n\r\n" + inner)
    statuses, _ = server.exchange(outer)
    assert statuses == [403], f"the body was answered as a request: {statuses}"  # lifecycle off


@pytest.fixture(scope="module")
def header_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The server with a web config on a fake clock, so each example's file is re-read at once."""
    path = tmp_path_factory.mktemp("headers") / "web.yml"
    path.write_text("")
    srv = Server(None)
    clock = FakeClock()
    srv.httpd.web_config_store = WebConfigStore(str(path), clock)
    srv.clock = clock
    yield srv, path
    srv.close()


@FUZZ
@given(value=st.text(max_size=40))
@example(value="default-src 'self' \u2014 v2")
def test_any_header_value_the_web_config_accepts_can_be_sent(
        header_server: tuple[Server, Path], value: str) -> None:
    """A security header value the web config accepts is one every response can carry."""
    srv, path = header_server
    path.write_text(yaml.safe_dump({"http_server_config": {"headers": {
        "Content-Security-Policy": value}}}, allow_unicode=True), encoding="utf-8")
    srv.clock.advance(2.0)
    statuses, data = srv.exchange(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses == [200], (srv.httpd.web_config_store.last_error, data[:200])
