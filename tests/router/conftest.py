"""Fixtures for the router: every party is a real server on loopback."""

from __future__ import annotations

import pytest

from testing.helpers.servers import free_port
from testing.router.harness import router_env, start_router, start_verifier
from tests.router.doubles import AllocatorDouble, MetadataServer
from tests.router.webui_stub import WebUiStub


class Platform:
    """Redis + IAP keys + metadata server + allocator + verifier + router, all running."""

    def __init__(self, redis_server, iap, allocator_url: str | None = None,
                 tmp_mb: int | None = None, **router_settings):
        """With `allocator_url`, the router calls that allocator instead of the double; with
        `tmp_mb`, the router's /tmp is a tmpfs of that size (harness.start_router)."""
        self.redis, self.iap = redis_server, iap
        self.metadata = MetadataServer()
        self.allocator = AllocatorDouble(iap, self.metadata, redis_server.port,
                                         redis_server.password)
        self.allocator_url = allocator_url or self.allocator.url
        self.verifier = start_verifier(iap.audience, iap.url)
        self.backends: list[WebUiStub] = []
        self.port = free_port()
        self.env = router_env(allocator_url=self.allocator_url, metadata_url=self.metadata.url,
                              redis_port=redis_server.port,
                              redis_password=redis_server.password,
                              verifier_port=self.verifier.port, port=self.port,
                              **router_settings)
        self.router = start_router(self.env, tmp_mb=tmp_mb)
        self.url = f"http://127.0.0.1:{self.port}"

    def backend(self, name: str, **kwargs) -> WebUiStub:
        stub = WebUiStub(name, **kwargs).start()
        self.backends.append(stub)
        return stub

    def close(self) -> None:
        self.router.stop()
        self.verifier.stop()
        self.allocator.stop()
        self.metadata.close()
        for stub in self.backends:
            stub.stop()


@pytest.fixture
def platform(redis_server, iap):
    p = Platform(redis_server, iap, ROUTE_CACHE_SECONDS="1", ACTIVITY_INTERVAL_SECONDS="1")
    yield p
    p.close()
