"""The HTTP server's security layer over real sockets: TLS, mTLS, basic auth, headers, rotation."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from trtc_exporter.clock import FakeClock
from trtc_exporter.web.toolkit.server import (
    ExporterHTTPServer,
    SecureHandlerMixin,
    parse_listen_address,
    san_allowed,
)
from trtc_exporter.web.toolkit.webconfig import REREAD_INTERVAL_SECONDS, WebConfigStore

HASH_A = bcrypt.hashpw(b"pw-a", bcrypt.gensalt(rounds=4)).decode()
HASH_B = bcrypt.hashpw(b"pw-b", bcrypt.gensalt(rounds=4)).decode()
Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _issue(cn: str, sans: list[x509.GeneralName], issuer: Issued | None = None,
           usage: x509.ObjectIdentifier | None = None) -> Issued:
    """A CA (no issuer) or a leaf with SANs and an extended key usage, as strict verifiers want."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer_cert, signer_key = issuer or (None, key)
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(signer_cert.subject if signer_cert else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   signer_key.public_key()), False))
    if issuer is None:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage or
                                                               ExtendedKeyUsageOID.SERVER_AUTH]),
                                        False)
    return builder.sign(signer_key, hashes.SHA256()), key


@dataclass(frozen=True)
class Pki:
    """PEM files: ca, other-ca, server, server2, client, stranger (other SAN), rogue (other CA)."""

    folder: Path

    def crt(self, name: str) -> str:
        return str(self.folder / f"{name}.crt")

    def key(self, name: str) -> str:
        return str(self.folder / f"{name}.key")

    def pair(self, name: str) -> tuple[str, str]:
        return self.crt(name), self.key(name)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One throw-away PKI per test module; EC keys keep generation fast."""
    folder = tmp_path_factory.mktemp("pki")
    ca, other_ca = _issue("test CA", []), _issue("other CA", [])
    local = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
             x509.IPAddress(ipaddress.ip_address("::1"))]
    client_usage = ExtendedKeyUsageOID.CLIENT_AUTH
    issued = {"ca": ca, "other-ca": other_ca, "server": _issue("server", local, ca),
              "server2": _issue("server2", local, ca),
              "client": _issue("prom", [x509.DNSName("prometheus.example")], ca, client_usage),
              "stranger": _issue("x", [x509.DNSName("other.example")], ca, client_usage),
              "rogue": _issue("prom", [x509.DNSName("prometheus.example")], other_ca,
                              client_usage)}
    for name, (cert, key) in issued.items():
        (folder / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (folder / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
    return Pki(folder)


class _Handler(SecureHandlerMixin):
    """The smallest handler the lead's one is shaped like: auth first, then the answer."""

    def do_GET(self) -> None:
        if not self.check_auth():
            return
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CountingCheckpw:
    """Real bcrypt, counted: injected through the server's constructor."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: bytes, hashed: bytes) -> bool:
        self.calls += 1
        return bcrypt.checkpw(password, hashed)


@contextlib.contextmanager
def serving(store: WebConfigStore | None, address: str | tuple[str, int] = ("127.0.0.1", 0),
            **kwargs: Any) -> Iterator[ExporterHTTPServer]:
    server = ExporterHTTPServer(address, _Handler, store, **kwargs)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _store(folder: Path, text: str) -> tuple[WebConfigStore, FakeClock]:
    (folder / "web.yml").write_text(text)
    clock = FakeClock()
    return WebConfigStore(str(folder / "web.yml"), clock), clock


def _replace(path: Path, data: bytes) -> None:
    """Overwrite with a later mtime: tests run faster than the file system's mtime ticks."""
    path.write_bytes(data)
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))


def _get(url: str, **kwargs: Any) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
        return session.get(url, timeout=5, **kwargs)


def _url(server: ExporterHTTPServer, scheme: str = "https", path: str = "/metrics") -> str:
    return f"{scheme}://127.0.0.1:{server.server_address[1]}{path}"


def _tls_config(pki: Pki, extra: str = "") -> str:
    return (f"tls_server_config:\n  cert_file: {pki.crt('server')}\n"
            f"  key_file: {pki.key('server')}\n{extra}")


MTLS = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca}\n"


@pytest.mark.parametrize(("address", "expected"), [
    (":9877", ("", 9877)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("localhost:0", ("localhost", 0)),
    ("[::1]:9877", ("::1", 9877)), ("[::]:65535", ("::", 65535)),
])
def test_parse_listen_address(address: str, expected: tuple[str, int]) -> None:
    """Go's listen address forms split into host and port; "" means every interface."""
    assert parse_listen_address(address) == expected


@pytest.mark.parametrize(("address", "problem"), [
    ("9877", "expected host:port"), ("::1:9877", "IPv6 address in brackets"),
    ("[localhost]:80", "only an IPv6 address"), (":http", "port must be a number"),
    (":65536", "port must be a number"), ("host:", "port must be a number"),
    (":-1", "port must be a number"), (":٩٨", "port must be a number"),
])
def test_parse_listen_address_rejects(address: str, problem: str) -> None:
    """Malformed addresses fail with the address and what is wrong with it."""
    with pytest.raises(ValueError, match=problem) as err:
        parse_listen_address(address)
    assert f'"{address}"' in str(err.value)


def test_plain_http_without_web_config() -> None:
    """Without --web.config.file the server is plain HTTP and adds no headers."""
    with serving(None) as server:
        response = _get(_url(server, "http"))
    assert response.status_code == 200
    assert "X-Frame-Options" not in response.headers


def test_ipv6_listen_address_binds_ipv6() -> None:
    """An IPv6 listen address gives an IPv6 socket that answers on [::1]."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with serving(None, "[::1]:0") as server:
        assert server.address_family == socket.AF_INET6
        assert _get(f"http://[::1]:{server.server_address[1]}/").status_code == 200


def test_empty_host_listens_on_ipv4_too() -> None:
    """":port" answers IPv4 clients, on a dual-stack socket where the system has one."""
    with serving(None, ":0") as server:
        assert _get(_url(server, "http")).status_code == 200
    if socket.has_dualstack_ipv6():
        assert server.address_family == socket.AF_INET6


def test_tls_serves_with_a_verifiable_certificate(pki: Pki, tmp_path: Path) -> None:
    """With tls_server_config the server speaks TLS that verifies against the CA."""
    store, _ = _store(tmp_path, _tls_config(pki))
    with serving(store) as server:
        assert _get(_url(server), verify=pki.crt("ca")).status_code == 200
        with pytest.raises(requests.ConnectionError):
            _get(_url(server, "http"))


def test_mtls_requires_a_certificate_from_the_client_ca(pki: Pki, tmp_path: Path) -> None:
    """RequireAndVerifyClientCert rejects no certificate and a foreign CA's, accepts ours."""
    store, _ = _store(tmp_path, _tls_config(pki, MTLS.format(ca=pki.crt("ca"))))
    with serving(store) as server:
        for cert in (None, pki.pair("rogue")):
            with pytest.raises(requests.ConnectionError):
                _get(_url(server), verify=pki.crt("ca"), cert=cert)
        assert _get(_url(server), verify=pki.crt("ca"), cert=pki.pair("client")).ok


def test_client_allowed_sans_rejects_other_sans(pki: Pki, tmp_path: Path) -> None:
    """A valid client certificate without an allowed SAN is cut off after the handshake."""
    extra = MTLS.format(ca=pki.crt("ca")) + "  client_allowed_sans: [prometheus.example]\n"
    store, _ = _store(tmp_path, _tls_config(pki, extra))
    with serving(store) as server:
        with pytest.raises(requests.ConnectionError):
            _get(_url(server), verify=pki.crt("ca"), cert=pki.pair("stranger"))
        assert _get(_url(server), verify=pki.crt("ca"), cert=pki.pair("client")).ok


def test_san_matching_normalises_ip_addresses() -> None:
    """OpenSSL's long IPv6 form matches the compressed form Go users write."""
    cert = {"subjectAltName": (("IP Address", "2001:DB8:0:0:0:0:0:1\n"), ("DNS", "a.example"))}
    assert san_allowed(cert, frozenset({"2001:db8::1"}))
    assert san_allowed(cert, frozenset({"a.example"}))
    assert not san_allowed(cert, frozenset({"b.example"}))
    assert not san_allowed(None, frozenset({"a.example"}))


def _handshake(port: int, cafile: str, max_version: ssl.TLSVersion | None = None) -> bytes:
    """Connect with a bare ssl client and return the server certificate (DER)."""
    ctx = ssl.create_default_context(cafile=cafile)
    if max_version is not None:
        ctx.maximum_version = max_version
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, \
            ctx.wrap_socket(sock, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_min_version_tls13_rejects_a_tls12_client(pki: Pki, tmp_path: Path) -> None:
    """min_version TLS13 refuses a client that stops at TLS 1.2 and accepts a TLS 1.3 one."""
    store, _ = _store(tmp_path, _tls_config(pki, "  min_version: TLS13\n"))
    with serving(store) as server:
        port = server.server_address[1]
        with pytest.raises(ssl.SSLError):
            _handshake(port, pki.crt("ca"), ssl.TLSVersion.TLSv1_2)
        assert _handshake(port, pki.crt("ca"))


def test_slow_client_does_not_block_others(pki: Pki, tmp_path: Path) -> None:
    """A connection that never starts its handshake does not delay the next client."""
    store, _ = _store(tmp_path, _tls_config(pki))
    with serving(store) as server, \
            socket.create_connection(("127.0.0.1", server.server_address[1])):
        assert _get(_url(server), verify=pki.crt("ca")).ok


def test_handshake_timeout_closes_idle_connections(pki: Pki, tmp_path: Path) -> None:
    """A client silent past the handshake timeout is disconnected."""
    store, _ = _store(tmp_path, _tls_config(pki))
    with serving(store, handshake_timeout=0.2) as server, \
            socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""
        assert time.monotonic() - started < 4


def _auth_server(tmp_path: Path, extra: str = "") -> tuple[WebConfigStore, FakeClock]:
    return _store(tmp_path, f"basic_auth_users:\n  alice: {HASH_A}\n{extra}")


@pytest.mark.parametrize(("auth", "status"), [
    (None, 401), (("alice", "pw-a"), 200), (("alice", "wrong"), 401), (("mallory", "pw-a"), 401),
    (("alice", "x" * 100), 401),
])
def test_basic_auth(tmp_path: Path, auth: tuple[str, str] | None, status: int) -> None:
    """Only a configured user with the right password passes; failures get a Basic challenge."""
    store, _ = _auth_server(tmp_path)
    with serving(store) as server:
        response = _get(_url(server, "http"), auth=auth)
    assert response.status_code == status
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Basic"


def test_unknown_user_costs_one_bcrypt_check(tmp_path: Path) -> None:
    """An unknown user still runs bcrypt once (on a decoy), so timing does not reveal users."""
    store, _ = _auth_server(tmp_path)
    checkpw = CountingCheckpw()
    with serving(store, checkpw=checkpw) as server:
        assert _get(_url(server, "http"), auth=("mallory", "pw-a")).status_code == 401
        assert checkpw.calls == 1
        assert _get(_url(server, "http"), headers={"Authorization": "Basic !!"}).status_code == 401
        assert checkpw.calls == 1


def test_successful_login_is_cached(tmp_path: Path) -> None:
    """The second request with the same credentials skips bcrypt; a wrong password does not."""
    store, _ = _auth_server(tmp_path)
    checkpw = CountingCheckpw()
    with serving(store, checkpw=checkpw) as server:
        for _ in range(3):
            assert _get(_url(server, "http"), auth=("alice", "pw-a")).ok
        assert checkpw.calls == 1
        assert _get(_url(server, "http"), auth=("alice", "pw-b")).status_code == 401
        assert checkpw.calls == 2


def test_security_headers_on_every_response(tmp_path: Path) -> None:
    """Configured headers are on successful responses and on 401s alike."""
    store, _ = _auth_server(tmp_path, "http_server_config:\n  headers:\n"
                                      "    X-Frame-Options: deny\n"
                                      "    Content-Security-Policy: default-src 'none'\n")
    with serving(store) as server:
        for auth in (None, ("alice", "pw-a")):
            response = _get(_url(server, "http"), auth=auth)
            assert response.headers["X-Frame-Options"] == "deny"
            assert response.headers["Content-Security-Policy"] == "default-src 'none'"


def test_unauthenticated_paths_skip_auth_only_there(tmp_path: Path) -> None:
    """A path listed as unauthenticated answers without credentials; others still need them."""
    store, _ = _auth_server(tmp_path)
    with serving(store, unauthenticated_paths=frozenset({"/-/healthy"})) as server:
        assert _get(_url(server, "http", "/-/healthy?verbose=1")).ok
        assert _get(_url(server, "http", "/metrics")).status_code == 401


def test_users_rotate_without_restart(tmp_path: Path) -> None:
    """A new hash in the file replaces the old password once the re-read interval passed."""
    store, clock = _auth_server(tmp_path)
    with serving(store) as server:
        assert _get(_url(server, "http"), auth=("alice", "pw-a")).ok
        _replace(tmp_path / "web.yml", f"basic_auth_users:\n  alice: {HASH_B}\n".encode())
        clock.advance(REREAD_INTERVAL_SECONDS + 0.1)
        assert _get(_url(server, "http"), auth=("alice", "pw-a")).status_code == 401
        assert _get(_url(server, "http"), auth=("alice", "pw-b")).ok


def test_broken_file_keeps_the_last_good_config(tmp_path: Path) -> None:
    """A broken rewrite is recorded and ignored: the old users keep working."""
    store, clock = _auth_server(tmp_path)
    with serving(store) as server:
        _replace(tmp_path / "web.yml", b"basic_auth_users: [\n")
        clock.advance(REREAD_INTERVAL_SECONDS + 0.1)
        assert _get(_url(server, "http"), auth=("alice", "pw-a")).ok
    assert store.reload_failures == 1
    assert store.last_error is not None and store.last_error.startswith("invalid YAML")


def test_certificate_rotates_without_restart(pki: Pki, tmp_path: Path) -> None:
    """New connections get the new certificate once the files changed and the interval passed."""
    for suffix in ("crt", "key"):
        (tmp_path / f"tls.{suffix}").write_bytes(Path(f"{pki.folder}/server.{suffix}").read_bytes())
    store, clock = _store(tmp_path, f"tls_server_config:\n  cert_file: {tmp_path / 'tls.crt'}\n"
                                    f"  key_file: {tmp_path / 'tls.key'}\n")
    expected = [x509.load_pem_x509_certificate(Path(pki.crt(n)).read_bytes())
                .public_bytes(serialization.Encoding.DER) for n in ("server", "server2")]
    with serving(store) as server:
        port = server.server_address[1]
        assert _handshake(port, pki.crt("ca")) == expected[0]
        _replace(tmp_path / "tls.key", Path(pki.key("server2")).read_bytes())
        _replace(tmp_path / "tls.crt", Path(pki.crt("server2")).read_bytes())
        assert _handshake(port, pki.crt("ca")) == expected[0]  # interval not yet passed
        clock.advance(REREAD_INTERVAL_SECONDS + 0.1)
        assert _handshake(port, pki.crt("ca")) == expected[1]
    assert store.reloads == 1
