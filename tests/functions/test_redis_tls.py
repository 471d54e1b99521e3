"""The functions reach Memorystore over TLS by IP, verified correctly.

A real redis-server with TLS whose certificate is shaped like Memorystore's: issued by the
instance's own CA, naming the instance IP in the subject CN and carrying no
subjectAltName (envoyproxy/ratelimit#409: Memorystore "sets the CN to an IP address").
The client connects by IP, as the functions do (REDIS_HOST is the instance's `host`).

Before the fix, `connect` turned on Python's hostname check, which matches an IP only
against iPAddress SANs: every connection failed with "IP address mismatch", so neither
function could ever read or write a session.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
from pathlib import Path

import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from shared.config import RedisSettings
from shared.redis_client import connect
from shared.state import SessionStore

from testing.helpers.servers import ManagedProcess, free_port

HOST = "127.0.0.1"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(subject_cn: str, key, issuer: x509.Name, issuer_key, *, ca: bool, san=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject_cn)).issuer_name(issuer)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class TlsRedis:
    """redis-server on a TLS port with a server certificate from our own instance CA."""

    def __init__(self, server_cn: str = HOST, san=None):
        self.dir = Path(tempfile.mkdtemp(prefix="sdfleet-fn-redis-tls-"))
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _issue("Google Cloud Memorystore Redis Server CA (test)", ca_key,
                    _name("Google Cloud Memorystore Redis Server CA (test)"), ca_key, ca=True)
        other_key = ec.generate_private_key(ec.SECP256R1())
        other = _issue("another instance's CA", other_key, _name("another instance's CA"),
                       other_key, ca=True)
        (self.dir / "ca.pem").write_bytes(_pem(ca))
        (self.dir / "other-ca.pem").write_bytes(_pem(other))
        key = ec.generate_private_key(ec.SECP256R1())
        (self.dir / "server.pem").write_bytes(_pem(_issue(server_cn, key, ca.subject, ca_key,
                                                          ca=False, san=san)))
        (self.dir / "server.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        self.password, self.port = "fn-tls-password", free_port()
        self.process = ManagedProcess(
            [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", "0",
             "--tls-port", str(self.port), "--bind", HOST,
             "--tls-cert-file", str(self.dir / "server.pem"),
             "--tls-key-file", str(self.dir / "server.key"),
             "--tls-ca-cert-file", str(self.dir / "ca.pem"), "--tls-auth-clients", "no",
             "--requirepass", self.password, "--save", "", "--appendonly", "no",
             "--dir", str(self.dir)], port=self.port, log_name="fn-redis-tls").start()

    def settings(self, ca: str = "ca.pem") -> RedisSettings:
        return RedisSettings.from_env({"REDIS_HOST": HOST, "REDIS_PORT": str(self.port),
                                       "REDIS_TLS": "true", "REDIS_CA_FILE": str(self.dir / ca),
                                       "REDIS_PASSWORD": self.password})

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def memorystore_like():
    server = TlsRedis()
    yield server
    server.stop()


def test_connects_by_ip_to_a_memorystore_shaped_certificate(memorystore_like):
    client = connect(memorystore_like.settings(), memorystore_like.password)
    try:
        assert client.ping()
        store = SessionStore(client)
        token = store.acquire_lock("g-1", 5000)
        assert token and store.lock_held("g-1")
    finally:
        client.close()


def test_a_certificate_from_another_ca_is_refused(memorystore_like):
    client = connect(memorystore_like.settings("other-ca.pem"), memorystore_like.password)
    try:
        with pytest.raises(redis.exceptions.ConnectionError, match="certificate verify failed"):
            client.ping()
    finally:
        client.close()


def test_a_certificate_of_the_right_ca_naming_another_address_is_refused():
    server = TlsRedis(server_cn="10.9.9.9")
    try:
        client = connect(server.settings(), server.password)
        with pytest.raises(redis.exceptions.ConnectionError, match="does not name 127.0.0.1"):
            client.ping()
        client.close()
    finally:
        server.stop()


def test_an_ip_subject_alternative_name_is_accepted_too():
    server = TlsRedis(server_cn="redis", san=[x509.IPAddress(ipaddress.ip_address(HOST))])
    try:
        client = connect(server.settings(), server.password)
        assert client.ping()
        client.close()
    finally:
        server.stop()
