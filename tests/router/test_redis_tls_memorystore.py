"""The router's Lua Redis TLS against a Memorystore-shaped
certificate (the instance IP in the subject CN, no subjectAltName), reached by IP with no
REDIS_SERVER_NAME, as the router Deployment is configured.

store.lua verifies with ngx's sslhandshake(verify=true): the chain against
lua_ssl_trusted_certificate (the instance CA) and the name with nginx's ngx_ssl_check_host,
i.e. OpenSSL X509_check_host, which falls back to the subject CN when the certificate has
no DNS subjectAltName. So, unlike Python's IP rule that broke the functions, the router
accepts Memorystore's certificate by its IP, and still refuses one naming another address.
"""

from __future__ import annotations

import shutil

import pytest

from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform
from tests.router.test_redis_tls import TlsRedis

ALICE = "accounts.google.com:100000000000000000001"
ALICE_ID = "g-100000000000000000001"


class MemorystoreLikeRedis(TlsRedis):
    def __init__(self, server_cn: str):
        import ssl
        super().__init__(server_cn, dns=None, log_name="ms-redis")     # CN only, no SAN
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        context.check_hostname = False          # the test's own seeding client only
        self._context = context

    def client(self) -> Resp:
        return Resp(self.port, self.password, tls=self._context, server_name=None)

    def stop(self):
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("server_cn,works", [("127.0.0.1", True), ("10.9.9.9", False)])
def test_router_verifies_memorystore_certificates_by_ip(iap, server_cn, works):
    redis_server = MemorystoreLikeRedis(server_cn)
    platform = Platform(redis_server, iap, REDIS_TLS="true",
                        REDIS_CA_FILE=str(redis_server.dir / "ca.pem"))
    try:
        pod = platform.backend("alice-pod")
        seed = redis_server.client()
        seed("HSET", f"sdfleet:map:{ALICE_ID}", "target", pod.target)
        seed.close()
        reply = request(platform.port, "/", token=iap.mint(sub=ALICE), html=True)
        if works:
            assert reply.status == 200 and reply.json()["backend"] == "alice-pod"
        else:
            assert reply.status == 503 and "session store is not reachable" in reply.text
            assert pod.requests == []
    finally:
        platform.close()
        redis_server.stop()
