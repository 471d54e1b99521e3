"""Redis over TLS, as with Memorystore in production: verified against the server's CA."""

import datetime
import shutil
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from testing.helpers.servers import ManagedProcess, free_port
from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform

ALICE = "accounts.google.com:100000000000000000001"
ALICE_ID = "g-100000000000000000001"
SERVER_NAME = "redis.sdfleet.test"


def _cert(subject: str, key, issuer_name, issuer_key, ca: bool, dns: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if dns:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_ca(directory: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _cert(name, key, subject, key, ca=True)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


class TlsRedis:
    """redis-server with TLS only, its certificate issued by the test's CA (`ca.pem`; a second,
    unrelated `other-ca.pem` beside it). `dns=None` makes a certificate that names the server
    in its CN only, as Memorystore's does (tests/router/test_redis_tls_memorystore.py)."""

    def __init__(self, server_cn: str = SERVER_NAME, dns: str | None = SERVER_NAME,
                 log_name: str = "redis-tls"):
        self.dir = Path(tempfile.mkdtemp(prefix=f"sdfleet-{log_name}-"))
        ca_key, ca_cert = _write_ca(self.dir, "ca")
        _write_ca(self.dir, "other-ca")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(server_cn, key, ca_cert.subject, ca_key, ca=False, dns=dns)
        (self.dir / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.dir / "server.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.password, self.port = f"{log_name}-password", free_port()
        self.process = ManagedProcess(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", "0",
             "--tls-port", str(self.port), "--bind", "127.0.0.1",
             "--tls-cert-file", str(self.dir / "server.pem"),
             "--tls-key-file", str(self.dir / "server.key"),
             "--tls-ca-cert-file", str(self.dir / "ca.pem"), "--tls-auth-clients", "no",
             "--requirepass", self.password, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], port=self.port, log_name=log_name).start()

    def client(self) -> Resp:
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        return Resp(self.port, self.password, tls=context, server_name=SERVER_NAME)

    def stop(self):
        self.process.stop()


@pytest.fixture
def tls_redis():
    server = TlsRedis()
    yield server
    server.stop()


def tls_platform(tls_redis, iap, ca_file: str) -> Platform:
    return Platform(tls_redis, iap, REDIS_TLS="true", REDIS_CA_FILE=ca_file,
                    REDIS_SERVER_NAME=SERVER_NAME, ACTIVITY_INTERVAL_SECONDS="1")


def test_router_reads_and_writes_redis_over_verified_tls(tls_redis, iap):
    platform = tls_platform(tls_redis, iap, str(tls_redis.dir / "ca.pem"))
    try:
        pod = platform.backend("alice-pod")
        redis = tls_redis.client()
        redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", pod.target)
        reply = request(platform.port, "/", token=iap.mint(sub=ALICE))
        assert reply.status == 200 and reply.json()["backend"] == "alice-pod"
        assert platform.allocator.calls == []
        for _ in range(20):  # the activity write goes over the same TLS pool
            if redis("ZSCORE", "sdfleet:activity", ALICE_ID):
                break
            __import__("time").sleep(0.1)
        assert redis("ZSCORE", "sdfleet:activity", ALICE_ID) is not None
        redis.close()
    finally:
        platform.close()


def test_redis_with_an_untrusted_certificate_is_not_used(tls_redis, iap):
    platform = tls_platform(tls_redis, iap, str(tls_redis.dir / "other-ca.pem"))
    try:
        pod = platform.backend("alice-pod")
        redis = tls_redis.client()
        redis("HSET", f"sdfleet:map:{ALICE_ID}", "target", pod.target)
        redis.close()
        reply = request(platform.port, "/", token=iap.mint(sub=ALICE), html=True)
        assert reply.status == 503 and "session store is not reachable" in reply.text
        assert pod.requests == []
    finally:
        platform.close()
