"""The router with the real allocator (functions/allocator under functions-framework) and
the Agones emulator: the path a person takes, from sign-in to their own pod and back after
the pod dies. Only the Kubernetes API is emulated."""

import sys
from pathlib import Path

import pytest

from testing.emulators.agones import AgonesEmulator
from testing.helpers.servers import ManagedProcess, free_port
from testing.router.resp import Resp
from tests.router.client import request
from tests.router.conftest import Platform

ROOT = Path(__file__).resolve().parents[2]
ALICE = "accounts.google.com:100000000000000000001"
BOB = "accounts.google.com:200000000000000000002"
ALICE_ID, BOB_ID = "g-100000000000000000001", "g-200000000000000000002"


def real_allocator(redis_server, iap, agones: AgonesEmulator) -> tuple[ManagedProcess, str]:
    """functions/allocator under functions-framework against the emulator; and its URL."""
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT / "functions"), "THREADS": "8",
           "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis_server.port),
           "REDIS_PASSWORD": redis_server.password, "REDIS_TLS": "false",
           "REDIS_PREFIX": "sdfleet:", "IAP_AUDIENCE": iap.audience, "IAP_CERTS_URL": iap.url,
           "K8S_API_URL": agones.url, "K8S_TOKEN": agones.token,
           "AGONES_NAMESPACE": agones.namespace, "FLEET_NAME": agones.fleet,
           "IDLE_TIMEOUT_SECONDS": "600", "MAX_SESSION_SECONDS": "7200",
           "ORPHAN_GRACE_SECONDS": "120"}
    allocator = ManagedProcess(
        [str(Path(sys.executable).parent / "functions-framework"), "--source",
         str(ROOT / "functions" / "allocator" / "main.py"), "--target", "allocate",
         "--host", "127.0.0.1", "--port", str(port)],
        port=port, env=env, cwd=str(ROOT), log_name="allocator").start(timeout=30)
    return allocator, f"http://127.0.0.1:{port}/allocate"


@pytest.fixture
def world(redis_server, iap):
    agones = AgonesEmulator(token="k8s-router-e2e", fleet="sdfleet-webui").start()
    allocator, url = real_allocator(redis_server, iap, agones)
    # allocator asked at every failure, so a pod Agones found dead is replaced at once
    platform = Platform(redis_server, iap, allocator_url=url,
                        ROUTE_CACHE_SECONDS="1", RESTART_RECHECK_SECONDS="0")
    yield platform, agones
    platform.close()
    allocator.stop()
    agones.stop()


def test_new_person_waits_for_a_gpu_then_reaches_their_own_pod(world):
    platform, agones = world
    token = platform.iap.mint(sub=ALICE, email="alice@example.com")
    page = request(platform.port, "/", token=token, html=True)
    assert page.status == 503 and page.headers["retry-after"]
    assert "Starting your Stable Diffusion WebUI" in page.text
    assert request(platform.port, "/_sdfleet/status", token=token).json()["status"] == "pending"

    # a GPU node came up and the pod's WebUI is loading the model (its supervisor says so
    # through the Agones SDK): the waiting page says that much
    agones.add_game_server("gs-a", state="Scheduled",
                           annotations={"agones.dev/sdk-sdfleet-phase": "loading-model"})
    status = request(platform.port, "/_sdfleet/status", token=token).json()
    assert (status["status"], status["phase"]) == ("pending", "loading-model")
    page = request(platform.port, "/", token=token, html=True)
    assert page.status == 503 and "loading the model" in page.text

    alice_pod, bob_pod = platform.backend("pod-a"), platform.backend("pod-b")
    agones.add_ready("gs-a", port=alice_pod.port)
    agones.add_ready("gs-b", port=bob_pod.port)
    assert request(platform.port, "/_sdfleet/status", token=token).json() == {"status": "ready"}
    first = request(platform.port, "/", token=token).json()["backend"]

    bob = platform.iap.mint(sub=BOB, email="bob@example.com")
    second = request(platform.port, "/", token=bob).json()["backend"]
    assert {first, second} == {"pod-a", "pod-b"}
    for _ in range(10):  # and it stays that way
        assert request(platform.port, "/", token=token).json()["backend"] == first
        assert request(platform.port, "/", token=bob).json()["backend"] == second
    labels = {gs["metadata"]["name"]: gs["metadata"]["labels"].get("sdfleet.dev/identity")
              for gs in agones.game_servers(state="Allocated")}
    assert sorted(labels.values()) == sorted([ALICE_ID, BOB_ID])


def test_dead_pod_is_replaced_in_the_same_request(world):
    platform, agones = world
    old, new = platform.backend("old-pod"), platform.backend("new-pod")
    agones.add_ready("gs-old", port=old.port)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).json()["backend"] == "old-pod"

    old.stop()
    agones.make_unhealthy("gs-old")  # Agones' health checks notice the dead WebUI
    agones.add_ready("gs-new", port=new.port)
    reply = request(platform.port, "/", token=token)
    assert reply.status == 200 and reply.json()["backend"] == "new-pod"
    redis = Resp(platform.redis.port, platform.redis.password)
    assert redis("HGET", f"sdfleet:map:{ALICE_ID}", "gs") == "gs-new"
    redis.close()


def test_pod_dead_before_agones_notices_gives_waiting_page_not_errors(world):
    platform, agones = world
    old, new = platform.backend("old-pod"), platform.backend("new-pod")
    agones.add_ready("gs-old", port=old.port)
    token = platform.iap.mint(sub=ALICE)
    assert request(platform.port, "/", token=token).json()["backend"] == "old-pod"

    old.stop()  # still Allocated in Agones: the allocator hands back the same pod
    page = request(platform.port, "/", token=token, html=True)
    assert page.status == 503 and "Starting your Stable Diffusion WebUI" in page.text

    agones.make_unhealthy("gs-old")
    agones.add_ready("gs-new", port=new.port)
    assert request(platform.port, "/_sdfleet/status", token=token).json() == {"status": "ready"}
    assert request(platform.port, "/", token=token).json()["backend"] == "new-pod"
