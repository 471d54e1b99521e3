"""Shared fixtures: real servers on loopback (see testing/helpers)."""

from __future__ import annotations

import pytest

from testing.helpers.iap import IapKeyServer
from testing.helpers.servers import RedisServer


@pytest.fixture
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def iap():
    server = IapKeyServer()
    yield server
    server.close()
