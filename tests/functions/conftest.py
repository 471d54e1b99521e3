"""Fixtures for the allocator and culler: real functions-framework processes, a real
redis-server, a real ES256 key server and the Agones emulator, all on loopback.

Servers are module-scoped to keep the suite fast; `clean` empties Redis and the emulator
before each test so tests stay independent.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from testing.emulators.agones import AgonesEmulator
from testing.helpers.iap import IapKeyServer
from testing.helpers.servers import ManagedProcess, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "functions"
FF_BIN = Path(sys.executable).parent / "functions-framework"
K8S_TOKEN = "k8s-test-token-2f9c"
FLEET = "sdfleet-webui"
CULLER_SA = "culler-scheduler@test-project.iam.gserviceaccount.com"
CULLER_AUDIENCE = "https://culler.test.local/cull"

# Let in-process unit tests import the function modules as the archives lay them out.
for sub in ("", "allocator", "culler"):
    path = str(FUNCTIONS / sub)
    if path not in sys.path:
        sys.path.append(path)


def base_env(redis_server, iap, agones, **extra) -> dict:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(FUNCTIONS),
        "THREADS": "16",
        "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port),
        "REDIS_PASSWORD": redis_server.password, "REDIS_TLS": "false",
        "REDIS_PREFIX": "sdfleet:",
        "IAP_AUDIENCE": iap.audience, "IAP_CERTS_URL": iap.url,
        "K8S_API_URL": agones.url, "K8S_TOKEN": agones.token,
        "AGONES_NAMESPACE": agones.namespace, "FLEET_NAME": agones.fleet,
        "IDLE_TIMEOUT_SECONDS": "600", "MAX_SESSION_SECONDS": "7200",
        "ORPHAN_GRACE_SECONDS": "120",
        "CULL_INVOKER_AUDIENCE": CULLER_AUDIENCE, "CULL_INVOKER_EMAILS": CULLER_SA,
        "OIDC_CERTS_URL": iap.url,
    }
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_function(name: str, target: str, env: dict) -> ManagedProcess:
    port = free_port()
    proc = ManagedProcess([str(FF_BIN), "--source", str(FUNCTIONS / name / "main.py"),
                           "--target", target, "--host", "127.0.0.1", "--port", str(port)],
                          port=port, env=env, cwd=str(ROOT), log_name=name)
    return proc.start(timeout=30)


def call(method: str, url: str, headers: dict | None = None, body: bytes | None = None,
         timeout: float = 30) -> tuple[int, dict, dict]:
    """(status, json body, headers) of one HTTP call; error statuses are returned too."""
    req = urllib.request.Request(url, data=body if body is not None else (b"" if method == "POST" else None),
                                 method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"{}"), dict(resp.headers)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {"raw": raw.decode(errors="replace")}
        return e.code, payload, dict(e.headers)


def iap_headers(token: str | None) -> dict:
    return {} if token is None else {"x-goog-iap-jwt-assertion": token}


@pytest.fixture(scope="module")
def m_redis():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def m_iap():
    server = IapKeyServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def m_agones():
    emu = AgonesEmulator(token=K8S_TOKEN, fleet=FLEET).start()
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def m_redis_client(m_redis):
    client = redis.Redis(port=m_redis.port, password=m_redis.password, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def clean(m_redis_client, m_agones):
    m_redis_client.flushall()
    m_agones.reset()
    yield
    m_agones.on_request = None


@pytest.fixture(scope="module")
def allocator(m_redis, m_iap, m_agones):
    proc = start_function("allocator", "allocate", base_env(m_redis, m_iap, m_agones))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def culler(m_redis, m_iap, m_agones):
    proc = start_function("culler", "cull", base_env(m_redis, m_iap, m_agones))
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def culler_small_pages(m_redis, m_iap, m_agones):
    proc = start_function("culler", "cull", base_env(m_redis, m_iap, m_agones,
                                                     RECONCILE_PAGE_SIZE=5))
    yield proc
    proc.stop()
