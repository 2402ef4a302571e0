"""TLS and basic auth end to end: the installed exporter in --demo mode with --web.config.file."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.integration.harness import Process, dump, free_port, run_cli, wait_for

pytestmark = pytest.mark.integration
USER = "prometheus"
PASSWORD = "tls-process-Passw0rd"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_pki(folder: Path) -> Path:
    """A CA, and a server certificate for 127.0.0.1/localhost signed by it; returns the CA path."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, key_cert_sign=True, crl_sign=True,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(san, critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (folder / "ca.crt").write_bytes(ca.public_bytes(pem))
    (folder / "server.crt").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "ca.crt"


def web_config(folder: Path, password: str = PASSWORD, tls: bool = True) -> Path:
    """A web config with (optionally) TLS from make_pki and one bcrypt user at cost 4."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    doc: dict[str, object] = {"basic_auth_users": {USER: hashed}}
    if tls:
        doc["tls_server_config"] = {"cert_file": "server.crt", "key_file": "server.key"}
    path = folder / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


class DemoExporter(Process):
    """The installed exporter in --demo mode behind a web config, on a free loopback port."""

    def __init__(self, tmp: Path, web: Path, ca: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = str(ca)
        super().__init__(["--demo", "--web.listen-address", f"127.0.0.1:{self.port}",
                          "--web.config.file", str(web), *extra], tmp / "exporter.log")
        wait_for(lambda: self.get("/-/ready").status_code == 200, 30, "exporter over https")

    def get(self, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> requests.Response:
        return requests.get(self.url + path, auth=auth, verify=self.ca, timeout=5)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The CA certificate and a TLS + basic auth web config that uses the CA's server cert."""
    folder = tmp_path_factory.mktemp("pki")
    return make_pki(folder), web_config(folder)


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory,
             pki: tuple[Path, Path]) -> Iterator[DemoExporter]:
    """The demo exporter serving https with basic auth; stopped (exit 0 checked) afterwards."""
    ca, web = pki
    proc = DemoExporter(tmp_path_factory.mktemp("exporter"), web, ca)
    yield proc
    assert proc.stop() == 0, dump(proc)


def test_https_with_the_ca_and_the_password_serves_metrics(exporter: DemoExporter) -> None:
    """Over https, verified against the test CA and with the right password, /metrics is 200."""
    response = exporter.get("/metrics")
    assert response.status_code == 200, dump(exporter)
    assert "trtc_ai_transcription_status{" in response.text
    assert exporter.get("/").status_code == 200


def test_plain_http_gets_no_answer(exporter: DemoExporter) -> None:
    """A plain-http request to the TLS port fails at the connection; nothing is served in clear."""
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{exporter.port}/metrics", auth=(USER, PASSWORD),
                     timeout=5)
    assert exporter.get("/metrics").status_code == 200  # and the server is still fine


def test_server_certificate_is_refused_without_the_ca(exporter: DemoExporter) -> None:
    """A client that does not trust the test CA refuses the exporter's certificate."""
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(exporter.url + "/metrics", auth=(USER, PASSWORD), timeout=5)


@pytest.mark.parametrize("auth", [None, (USER, "wrong"), ("nobody", PASSWORD)],
                         ids=["no-auth", "wrong-password", "unknown-user"])
def test_wrong_or_missing_credentials_get_401(exporter: DemoExporter,
                                              auth: tuple[str, str] | None) -> None:
    """Missing credentials, a wrong password or an unknown user get 401 with a Basic challenge."""
    for path in ("/metrics", "/", "/api/v1/targets", "/-/healthy", "/-/ready"):
        response = exporter.get(path, auth=auth)
        assert response.status_code == 401, (path, response.status_code)
        assert response.headers["WWW-Authenticate"] == "Basic"
        assert "trtc_" not in response.text


def test_healthcheck_can_be_opened_with_the_flag(tmp_path: Path,
                                                 pki: tuple[Path, Path]) -> None:
    """With --web.healthcheck-unauthenticated, /-/healthy and /-/ready skip auth; nothing else."""
    ca, web = pki
    proc = DemoExporter(tmp_path, web, ca, "--web.healthcheck-unauthenticated")
    try:
        assert proc.get("/-/healthy", auth=None).status_code == 200, dump(proc)
        assert proc.get("/-/ready", auth=None).status_code == 200
        assert proc.get("/metrics", auth=None).status_code == 401
        assert proc.get("/api/v1/targets", auth=None).status_code == 401
        with pytest.raises(requests.ConnectionError):  # TLS still applies to the open paths
            requests.get(f"http://127.0.0.1:{proc.port}/-/healthy", timeout=5)
    finally:
        assert proc.stop() == 0


INVALID_WEB_CONFIGS = {
    "missing-key-file": ({"tls_server_config": {"cert_file": "server.crt"}},
                         "tls_server_config.key_file: required"),
    "absent-cert-file": ({"tls_server_config": {"cert_file": "absent.crt",
                                                "key_file": "server.key"}},
                         'tls_server_config.cert_file: cannot read "absent.crt"'),
    "bad-hash": ({"basic_auth_users": {USER: "plain-text-password"}},
                 f"basic_auth_users.{USER}: not a bcrypt hash"),
    "unknown-key": ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                                           "min_versoin": "TLS12"}},
                    "tls_server_config.min_versoin: unknown key"),
}


@pytest.mark.parametrize("name", sorted(INVALID_WEB_CONFIGS))
def test_invalid_web_config_exits_2_naming_the_key(tmp_path: Path, name: str) -> None:
    """An unusable web config stops the exporter at start with exit 2 and the key path."""
    make_pki(tmp_path)
    doc, expected = INVALID_WEB_CONFIGS[name]
    path = tmp_path / "web.yml"
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("--demo", "--web.listen-address", f"127.0.0.1:{free_port()}",
                     "--web.config.file", str(path))
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "plain-text-password" not in result.stdout + result.stderr
