"""Redis is a cache: a flush (Memorystore Basic's maintenance, a failover without the last
writes) loses no session and no pod. On `make demo`'s machinery: the real router, allocator,
culler and pods, with redis-server restarted without persistence mid-session."""

from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from testing.helpers.servers import free_port
from tests.demo.conftest import TEST_TIMINGS, game_server_of, identity_of
from tools.demo.world import Demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A demo of its own (its Redis is restarted), with a short orphan grace so the test
    runs past it: before the rebuild, that grace was when working people lost their pods."""
    world = Demo("demo", port=free_port(), state_dir=tmp_path_factory.mktemp("flush"),
                 overrides={**TEST_TIMINGS, "orphanGraceSeconds": 10}).start()
    yield world
    world.stop()

# What a page's own script sends (Fetch Metadata): it may never start a pod.
SCRIPT = {"Sec-Fetch-Dest": "empty", "Sec-Fetch-Mode": "cors", "Accept": "application/json"}


class Tab:
    """A person's open WebUI tab, as plain HTTP through the stand-in IAP."""

    def __init__(self, demo, email: str):
        self.demo, self.email = demo, email
        self.http = requests.Session()
        self.http.post(f"{demo.url}/_demo/signin", data={"email": email, "next": "/"},
                       allow_redirects=False)

    def open(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.http.get(f"{self.demo.url}/", headers={"Accept": "text/html"}).status_code != 200:
            assert time.monotonic() < deadline, f"{self.email} never got a WebUI"
            time.sleep(0.5)

    def api_call(self) -> requests.Response:
        """What the open page's script does while the person works."""
        return self.http.get(f"{self.demo.url}/sdapi/v1/sd-models", headers=SCRIPT, timeout=30)


def allocated_per_identity(demo) -> collections.Counter:
    return collections.Counter(gs["metadata"]["labels"].get("sdfleet.dev/identity")
                               for gs in demo.emulator.game_servers(state="Allocated"))


def test_a_redis_flush_mid_session_loses_no_session_and_no_pod(demo):
    working = [Tab(demo, f"worker{i}@example.com") for i in range(3)]
    leaving = Tab(demo, "leaver@example.com")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(Tab.open, working + [leaving]))
    opened = time.monotonic()
    pods = {tab.email: game_server_of(demo, tab.email)["metadata"]["name"]
            for tab in working + [leaving]}
    for tab in working:
        assert tab.api_call().status_code == 200

    demo.redis.restart()  # no persistence: every mapping, activity record and lock is gone
    assert demo.redis_client().dbsize() == 0

    # the open pages' next calls are served by the same pods, without a reload
    for tab in working:
        reply = tab.api_call()
        assert reply.status_code == 200, (tab.email, reply.status_code, reply.text[:300])
        assert reply.json()[0]["title"] == "stand-in"

    # the people working keep their pods through several culler passes, past the idle
    # timeout of the one who left and past the orphan grace; that one's pod is culled on time
    until = max(time.monotonic() + demo.idle_seconds, opened + demo.demo.orphan_grace_seconds) + 8
    while time.monotonic() < until:
        for tab in working:
            assert tab.api_call().status_code == 200
        summary = demo.cull_now()
        assert not summary["reconcileErrors"], summary
        time.sleep(2)
    for tab in working:
        gs = game_server_of(demo, tab.email)
        assert gs and gs["metadata"]["name"] == pods[tab.email], tab.email
        assert demo.redis_client().hget(f"sdfleet:map:{identity_of(tab.email)}", "gs") \
            == pods[tab.email]
    assert game_server_of(demo, leaving.email) is None
    assert all(count == 1 for ident, count in allocated_per_identity(demo).items() if ident)

    # and the one who left comes back to a fresh pod, with nobody holding two
    leaving.open()
    assert game_server_of(demo, leaving.email)["metadata"]["name"] != pods[leaving.email]
    assert all(count == 1 for ident, count in allocated_per_identity(demo).items() if ident)
