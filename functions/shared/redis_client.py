"""The functions' Redis client: quick retries, bytes-safe decoding, TLS pinned to the
instance's own CA."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .config import RedisSettings


def certificate_names(cert: dict, host: str) -> bool:
    """Does this (verified) server certificate name `host`, as a subject alternative name or
    as its common name? Memorystore names its IP address in the common name only, which
    Python's own check refuses (docs/decisions/2026-12-memorystore-tls.md); the chain is
    verified against the instance's own CA first, so no other server's certificate passes."""
    sans = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("IP Address", "DNS")]
    if host in sans:
        return True
    common_names = [value for rdn in cert.get("subject", ()) for key, value in rdn
                    if key == "commonName"]
    return host in common_names


class PinnedCaSSLConnection(redis.connection.SSLConnection):
    """TLS verified against the pinned CA, then the name checked by `certificate_names`."""

    def _wrap_socket_with_ssl(self, sock):
        sslsock = super()._wrap_socket_with_ssl(sock)
        if not certificate_names(sslsock.getpeercert() or {}, self.host):
            sslsock.close()
            raise redis.exceptions.ConnectionError(
                f"the Redis server certificate does not name {self.host}")
        return sslsock


def connect(settings: RedisSettings, password: str | None) -> redis.Redis:
    # Two quick retries (a failover or a dropped idle connection), then the caller answers
    # 503: redis-py's default back-off would hold a request for seconds.
    # surrogateescape: a member or field holding bytes that are not UTF-8 reads as a str
    # (the culler then skips that one record) and writes back as the same bytes, instead
    # of a UnicodeDecodeError that fails the whole reply.
    kwargs = dict(host=settings.host, port=settings.port, password=password,
                  decode_responses=True, encoding_errors="surrogateescape",
                  socket_timeout=2, socket_connect_timeout=2,
                  health_check_interval=30, max_connections=64,
                  retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
    if settings.tls:
        # The chain is always verified (CERT_REQUIRED against the pinned instance CA);
        # the name is checked by PinnedCaSSLConnection instead of ssl's IP-only rule.
        pool = redis.ConnectionPool(connection_class=PinnedCaSSLConnection,
                                    ssl_cert_reqs="required", ssl_ca_certs=settings.ca_file,
                                    ssl_check_hostname=False, **kwargs)
        return redis.Redis(connection_pool=pool)
    return redis.Redis(**kwargs)
