"""A real redis-server on 127.0.0.1 for the coordination tests: own port, own temp dir, no disk.

Skipped with a reason only when the binary is absent (CI installs Debian's redis-server).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from trtc_exporter.coordination.link import no_retry

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisProcess:
    """One redis-server process that can be stopped and started again on the same port."""

    def __init__(self, workdir: Path, tls_args: tuple[str, ...] = ()) -> None:
        """``tls_args``: redis-server's TLS options; the TLS port is then ``tls_port``."""
        self.port = free_port()
        self.tls_port = free_port() if tls_args else 0
        self.tls_args = tls_args
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--protected-mode", "yes",
             *(("--tls-port", str(self.tls_port), *self.tls_args) if self.tls_args else ())],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def client(self, **kwargs: object) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5,
                           retry=no_retry(), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisProcess(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rdb(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    """A client of the shared server, on an empty database."""
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()



def self_signed(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files): no system CA trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "redis test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    crt_path, key_path = folder / "redis.crt", folder / "redis.key"
    crt_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return crt_path, key_path


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A server that also listens with TLS on ``tls_port``, under a self-signed certificate."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    crt, key = self_signed(tmp_path)
    server = RedisProcess(tmp_path, ("--tls-cert-file", str(crt), "--tls-key-file", str(key),
                                     "--tls-auth-clients", "no"))
    server.start()
    yield server
    server.stop()
