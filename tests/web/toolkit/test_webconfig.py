"""The exporter-toolkit web config: parsing, exact error messages, and hot reload."""

from __future__ import annotations

import datetime as dt
import os
import ssl
from pathlib import Path

import bcrypt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trtc_exporter.clock import FakeClock
from trtc_exporter.web.toolkit.webconfig import (
    REREAD_INTERVAL_SECONDS,
    WebConfig,
    WebConfigError,
    WebConfigStore,
    load_web_config,
)

CORPUS = Path(__file__).parents[2] / "fixtures" / "webconfig"
INVALID = sorted(CORPUS.glob("invalid-*.yml"))
HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def _pem_key(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def _self_signed(name: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), key


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    """A folder with server.crt/server.key, ca.crt and a key of another pair, other.key."""
    cert, key = _self_signed("localhost")
    (tmp_path / "server.crt").write_bytes(cert)
    (tmp_path / "ca.crt").write_bytes(cert)
    (tmp_path / "server.key").write_bytes(_pem_key(key))
    (tmp_path / "other.key").write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1())))
    return tmp_path


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _expected(path: Path) -> str:
    prefix = "# error: "
    lines = path.read_text().splitlines()
    return "\n".join(line.removeprefix(prefix) for line in lines if line.startswith(prefix))


def test_corpus_has_one_file_per_mistake() -> None:
    """The bad-config corpus exists and every file declares the message it must produce."""
    assert len(INVALID) >= 25
    assert all(_expected(path) for path in INVALID)


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_gives_exact_message(path: Path) -> None:
    """Each invalid file fails with exactly the message in its `# error:` comment lines."""
    with pytest.raises(WebConfigError) as err:
        load_web_config(str(path))
    assert str(err.value) == _expected(path)


def test_empty_file_means_no_tls_and_no_auth(tmp_path: Path) -> None:
    """An empty web config is valid and turns nothing on, as in the toolkit."""
    config = load_web_config(str(_write(tmp_path / "web.yml", "")))
    assert config == WebConfig()


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    """A web config path that does not exist is reported with the path."""
    with pytest.raises(WebConfigError, match="cannot read: No such file"):
        load_web_config(str(tmp_path / "absent.yml"))


def test_full_config_builds_the_tls_context(tls_dir: Path) -> None:
    """All toolkit keys map onto the SSLContext: versions, client auth, ciphers, SANs, headers."""
    config = load_web_config(str(_write(tls_dir / "web.yml", f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]
  prefer_server_cipher_suites: false
http_server_config:
  http2: true
  headers:
    X-Frame-Options: deny
    X-Content-Type-Options: nosniff
    Strict-Transport-Security: ""
basic_auth_users:
  alice: {HASH}
""")))
    assert config.tls is not None
    ctx = config.tls.context
    assert (ctx.minimum_version, ctx.maximum_version) == (ssl.TLSVersion.TLSv1_2,
                                                          ssl.TLSVersion.TLSv1_3)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"}
    assert tls12 == {"ECDHE-ECDSA-AES256-GCM-SHA384"}
    assert config.tls.client_allowed_sans == {"prometheus.example", "10.0.0.1"}
    assert config.headers == (("X-Frame-Options", "deny"), ("X-Content-Type-Options", "nosniff"))
    assert config.users["alice"].reveal() == HASH
    assert config.dummy_cost == 4
    assert config.files == tuple(str(tls_dir / n) for n in ("server.crt", "server.key", "ca.crt"))
    assert any(note.startswith("http_server_config.http2: ignored") for note in config.notes)


def test_toolkit_defaults(tls_dir: Path) -> None:
    """Without options: TLS 1.2 to 1.3, no client certificate, server cipher preference."""
    config = load_web_config(str(_write(tls_dir / "web.yml",
                                        "tls_server_config: {cert_file: server.crt, "
                                        "key_file: server.key}\n")))
    assert config.tls is not None
    ctx = config.tls.context
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_inline_cert_key_and_ca_are_accepted(tls_dir: Path) -> None:
    """cert, key and client_ca may be given inline as PEM strings instead of files."""
    def block(name: str) -> str:
        lines = (tls_dir / name).read_text().splitlines()
        return "|\n" + "".join(f"    {line}\n" for line in lines)
    text = (f"tls_server_config:\n  cert: {block('server.crt')}  key: {block('server.key')}"
            f"  client_ca: {block('ca.crt')}  client_auth_type: VerifyClientCertIfGiven\n")
    config = load_web_config(str(_write(tls_dir / "web.yml", text)))
    assert config.tls is not None
    assert config.tls.context.verify_mode == ssl.CERT_OPTIONAL
    assert config.tls.context.cert_store_stats()["x509_ca"] == 1
    assert config.files == ()


def test_relative_paths_are_relative_to_the_config_file(tls_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """File names resolve against the web config's folder, not the working directory."""
    monkeypatch.chdir("/")
    config = load_web_config(str(_write(tls_dir / "web.yml",
                                        "tls_server_config: {cert_file: server.crt, "
                                        "key_file: server.key}\n")))
    assert config.tls is not None


def test_key_of_another_certificate_is_rejected(tls_dir: Path) -> None:
    """A key that does not belong to the certificate fails at load time, naming key_file."""
    path = _write(tls_dir / "web.yml",
                  "tls_server_config: {cert_file: server.crt, key_file: other.key}\n")
    with pytest.raises(WebConfigError) as err:
        load_web_config(str(path))
    assert str(err.value).startswith(
        "tls_server_config.key_file: does not load with the certificate (")


def test_encrypted_key_is_rejected(tls_dir: Path) -> None:
    """An encrypted private key is refused instead of prompting for a passphrase."""
    (tls_dir / "enc.key").write_bytes(_pem_key(ec.generate_private_key(ec.SECP256R1()), b"pw"))
    path = _write(tls_dir / "web.yml",
                  "tls_server_config: {cert_file: server.crt, key_file: enc.key}\n")
    with pytest.raises(WebConfigError, match=r"^tls_server_config.key_file: encrypted private"):
        load_web_config(str(path))


def test_every_go_cipher_name_maps_to_openssl(tls_dir: Path) -> None:
    """All of Go's tls.CipherSuites() names are accepted; TLS 1.2 ones become OpenSSL ciphers."""
    names = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
             "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
             "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256",
             "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
             "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
             "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
             "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
             "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
             "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384"]
    config = load_web_config(str(_write(tls_dir / "web.yml", (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
        f"  cipher_suites: [{', '.join(names)}]\n"))))
    assert config.tls is not None
    tls12 = {c["name"] for c in config.tls.context.get_ciphers() if c["protocol"] != "TLSv1.3"}
    refused = {n for n in config.notes if "is not offered" in n}
    assert len(tls12) + len(refused) == 16  # 19 names, 3 of them TLS 1.3 suites


def test_only_tls13_suites_turn_tls12_off(tls_dir: Path) -> None:
    """Listing only TLS 1.3 suites leaves no TLS 1.2 suite, so TLS 1.3 becomes the minimum."""
    config = load_web_config(str(_write(tls_dir / "web.yml", (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, "
        "cipher_suites: [TLS_AES_128_GCM_SHA256]}\n"))))
    assert config.tls is not None
    assert config.tls.context.minimum_version == ssl.TLSVersion.TLSv1_3


def test_any_client_cert_modes_verify_and_say_so(tls_dir: Path) -> None:
    """RequireAnyClientCert verifies against the CA here, and a note tells the operator."""
    config = load_web_config(str(_write(tls_dir / "web.yml", (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, "
        "client_auth_type: RequireAnyClientCert, client_ca_file: ca.crt, "
        "curve_preferences: [X25519]}\n"))))
    assert config.tls is not None
    assert config.tls.context.verify_mode == ssl.CERT_REQUIRED
    assert any("acts as RequireAndVerifyClientCert" in note for note in config.notes)
    assert any("curve_preferences: ignored" in note for note in config.notes)


def test_verifying_without_client_ca_uses_system_cas(tls_dir: Path) -> None:
    """As Go does, a verifying mode without client_ca_file trusts the system CAs, with a note."""
    config = load_web_config(str(_write(tls_dir / "web.yml", (
        "tls_server_config: {cert_file: server.crt, key_file: server.key, "
        "client_auth_type: RequireAndVerifyClientCert}\n"))))
    assert any("checked against the system CAs" in note for note in config.notes)


def test_secrets_never_appear_in_errors_or_repr(tls_dir: Path) -> None:
    """Neither a bad hash, an inline key nor a good hash is echoed by errors or repr."""
    path = _write(tls_dir / "web.yml", (
        "tls_server_config: {cert_file: server.crt, key: TOPSECRETKEY}\n"
        "basic_auth_users: {bob: hunter2-plaintext}\n"))
    with pytest.raises(WebConfigError) as err:
        load_web_config(str(path))
    assert "TOPSECRETKEY" not in str(err.value)
    assert "hunter2" not in str(err.value)
    good = load_web_config(str(_write(tls_dir / "ok.yml", f"basic_auth_users: {{bob: {HASH}}}\n")))
    assert HASH not in repr(good)
    assert HASH not in str(good.users)


def _store(path: Path, text: str) -> tuple[WebConfigStore, FakeClock]:
    clock = FakeClock()
    _write(path, text)
    return WebConfigStore(str(path), clock), clock


def _rewrite(path: Path, text: str, clock: FakeClock) -> None:
    """Write new content with a new mtime (tests run faster than the mtime clock ticks)."""
    path.write_text(text)
    stamp = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(stamp, stamp))
    clock.advance(REREAD_INTERVAL_SECONDS + 0.1)


def test_store_rereads_at_most_once_per_interval(tmp_path: Path) -> None:
    """A change is picked up only after the re-read interval has passed on the clock."""
    store, clock = _store(tmp_path / "web.yml", "")
    path = tmp_path / "web.yml"
    path.write_text(f"basic_auth_users: {{alice: {HASH}}}\n")
    os.utime(path, ns=(1, 1))
    assert not store.current().users
    clock.advance(REREAD_INTERVAL_SECONDS)
    assert set(store.current().users) == {"alice"}
    assert store.reloads == 1


def test_touch_without_change_keeps_the_same_config(tmp_path: Path) -> None:
    """A new mtime with the same content is not a reload."""
    store, clock = _store(tmp_path / "web.yml", f"basic_auth_users: {{alice: {HASH}}}\n")
    before = store.current()
    _rewrite(tmp_path / "web.yml", f"basic_auth_users: {{alice: {HASH}}}\n", clock)
    assert store.current() is before
    assert store.reloads == 0


def test_bad_reread_keeps_last_good_config(tmp_path: Path) -> None:
    """A broken file is counted and reported once, the last good config stays, a fix recovers."""
    path = tmp_path / "web.yml"
    store, clock = _store(path, f"basic_auth_users: {{alice: {HASH}}}\n")
    good = store.current()
    _rewrite(path, "basic_auth_users: {alice: nope}\n", clock)
    assert store.current() is good
    assert store.last_error == "basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ or $2y$, " \
                               "cost 04-31)"
    assert store.reload_failures == 1
    clock.advance(REREAD_INTERVAL_SECONDS * 3)
    store.current()
    assert store.reload_failures == 1
    _rewrite(path, f"basic_auth_users: {{bob: {HASH}}}\n", clock)
    assert set(store.current().users) == {"bob"}
    assert store.last_error is None


def test_invalid_file_at_start_raises(tmp_path: Path) -> None:
    """The store refuses to start on an invalid file, so the CLI can exit 2."""
    with pytest.raises(WebConfigError, match=r"^rate_limit: not supported"):
        _store(tmp_path / "web.yml", "rate_limit: {interval: 1s}\n")


def test_turning_tls_off_needs_a_restart(tls_dir: Path) -> None:
    """Removing tls_server_config on a running server is refused, keeping TLS on."""
    store, clock = _store(tls_dir / "web.yml",
                          "tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
    _rewrite(tls_dir / "web.yml", "", clock)
    assert store.current().tls is not None
    assert store.last_error == "tls_server_config: turning TLS on or off needs a restart"


def test_certificate_change_rebuilds_the_context(tls_dir: Path) -> None:
    """Files named by the config are watched too: a new certificate gives a new SSLContext."""
    store, clock = _store(tls_dir / "web.yml",
                          "tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
    first = store.current().tls
    cert, key = _self_signed("localhost")
    (tls_dir / "server.key").write_bytes(_pem_key(key))
    _rewrite(tls_dir / "server.crt", cert.decode(), clock)
    second = store.current().tls
    assert first is not None and second is not None
    assert second.context is not first.context
    assert store.reloads == 1


def test_missing_certificate_is_picked_up_when_it_appears(tls_dir: Path) -> None:
    """After a reload failed on a missing file, creating that file triggers a good reload."""
    store, clock = _store(tls_dir / "web.yml",
                          "tls_server_config: {cert_file: server.crt, key_file: server.key}\n")
    (tls_dir / "server.crt").rename(tls_dir / "new.crt")
    _rewrite(tls_dir / "web.yml",
             "tls_server_config: {cert_file: next.crt, key_file: server.key}\n", clock)
    store.current()
    assert store.reload_failures == 1
    (tls_dir / "new.crt").rename(tls_dir / "next.crt")
    clock.advance(REREAD_INTERVAL_SECONDS + 0.1)
    store.current()
    assert store.last_error is None
    assert store.reloads == 1
