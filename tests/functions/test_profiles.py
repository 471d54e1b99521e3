"""Profiles in the allocator: the person's choice decides the fleet, access is checked by
the allocator itself (users, domains, groups through a fake of the Cloud Identity Groups
API), a switch ends the old session before the new one starts, and a pool that cannot get a
node says so from the cluster autoscaler's events.

In-process: the real Allocator and AgonesClient against a real redis-server and the Agones
emulator with two fleets; the group API is a real HTTP server speaking Cloud Identity's paths.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from allocation import Allocator
from allocator_rules import admit, capacity_problem, choose
from membership import GroupMembership
from shared.agones import AgonesClient, TokenSource
from shared.config import AllocatorSettings, KubernetesSettings
from shared.profiles import Profile, load_profiles
from shared.state import SessionStore
from shared.verifier import Identity

A1111, COMFY = "sdfleet-webui-a1111-l4", "sdfleet-webui-comfyui-a100"
PROFILES = [
    {"name": "a1111-l4", "displayName": "AUTOMATIC1111 on an L4", "description": "classic",
     "framework": "automatic1111", "frameworkLabel": "AUTOMATIC1111", "gpu": "L4",
     "region": "us-central1", "fleet": A1111, "access": None, "maxSessions": 6,
     "gpusPerPod": 1.0, "default": True},
    {"name": "comfyui-a100", "displayName": "ComfyUI on an A100", "description": "nodes",
     "framework": "comfyui", "frameworkLabel": "ComfyUI", "gpu": "A100 40GB",
     "region": "us-central1", "fleet": COMFY,
     "access": ["group:comfy@example.com", "user:carol@example.com"], "maxSessions": 2,
     "gpusPerPod": 1.0, "default": False},
]
ALICE = Identity("g-100000000000000000001", "accounts.google.com:100000000000000000001",
                 "alice@example.com")      # in the comfy group
BOB = Identity("g-100000000000000000002", "accounts.google.com:100000000000000000002",
               "bob@example.com")          # in no group
CAROL = Identity("g-100000000000000000003", "accounts.google.com:100000000000000000003",
                 "carol@example.com")      # named as a user


class GroupsApi:
    """Cloud Identity's groups:lookup and checkTransitiveMembership, with a switch for 403."""

    def __init__(self, members: dict[str, set[str]]):
        self.members, self.status, self.calls = members, 200, []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                api.calls.append(parts.path)
                if api.status != 200:
                    return self._send(api.status, {"error": {"code": api.status,
                                                              "message": "The caller does not have permission"}})
                if self.headers.get("Authorization") != "Bearer groups-token":
                    return self._send(401, {"error": {"code": 401}})
                if parts.path == "/v1/groups:lookup":
                    group = query.get("groupKey.id", "")
                    if group not in api.members:
                        return self._send(404, {"error": {"code": 404}})
                    return self._send(200, {"name": f"groups/{group.split('@')[0]}"})
                if parts.path.endswith("/memberships:checkTransitiveMembership"):
                    group = parts.path.split("/")[3] + "@example.com"
                    email = unquote(query["query"]).split("'")[1]
                    return self._send(200, {"hasMembership": email in api.members.get(group, set())})
                return self._send(404, {})

            def _send(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()


@pytest.fixture
def groups():
    api = GroupsApi({"comfy@example.com": {"alice@example.com"}})
    yield api
    api.stop()


@pytest.fixture
def store(m_redis_client, clean):
    return SessionStore(m_redis_client, "sdfleet:")


def _allocator(store, agones, groups, clock=time.time) -> Allocator:
    env = {"SDFLEET_PROFILES": json.dumps(PROFILES)}
    profiles = load_profiles(env, None)
    client = AgonesClient(KubernetesSettings(
        api_url=agones.url, ca_file=None, ca_data=None, token=agones.token,
        namespace=agones.namespace, fleet=A1111, fleets=(A1111, COMFY), port_name="webui",
        timeout_seconds=5, workers=4))
    membership = GroupMembership(groups.url, TokenSource("groups-token"), cache_seconds=60)
    return Allocator(store, client, AllocatorSettings(
        iap_audience="aud", iap_certs_url="https://keys.invalid", clock_skew_seconds=30,
        lock_seconds=20, lock_wait_seconds=2, profiles=tuple(profiles)),
        clock=clock, membership=membership)


def _warm(agones, n: int = 2):
    for i in range(n):
        agones.add_ready(f"{A1111}-x-{i}", port=7100 + i, fleet=A1111)
        agones.add_ready(f"{COMFY}-x-{i}", port=7200 + i, fleet=COMFY)


def _held_by(agones, who: Identity) -> list[dict]:
    return [g for g in agones.game_servers()
            if g["metadata"]["labels"].get("sdfleet.dev/identity") == who.id
            and g["status"]["state"] == "Allocated"]


def test_a_person_with_two_profiles_is_asked_and_one_with_one_is_not(store, m_agones, groups):
    _warm(m_agones)
    allocator = _allocator(store, m_agones, groups)
    asked = allocator.allocate(ALICE)
    assert asked["status"] == "choose"
    assert [p["name"] for p in asked["profiles"]] == ["a1111-l4", "comfyui-a100"]
    assert all(p["readyNow"] for p in asked["profiles"])
    assert _held_by(m_agones, ALICE) == []                 # nothing started before the choice
    direct = allocator.allocate(BOB)                       # only the default is open to Bob
    assert direct["status"] == "ready" and direct["profile"] == "a1111-l4"
    assert [g["metadata"]["labels"]["agones.dev/fleet"] for g in _held_by(m_agones, BOB)] == [A1111]


def test_the_choice_lands_in_its_fleet_and_is_remembered(store, m_agones, groups):
    _warm(m_agones)
    allocator = _allocator(store, m_agones, groups)
    answer = allocator.allocate(ALICE, profile="comfyui-a100")
    assert answer["status"] == "ready" and answer["profile"] == "comfyui-a100"
    assert [g["metadata"]["labels"]["agones.dev/fleet"] for g in _held_by(m_agones, ALICE)] == [COMFY]
    assert store.chosen_profile(ALICE.id) == "comfyui-a100"
    # The session ends (culled); the next page load starts the remembered profile unasked.
    m_agones.remove(answer["gameServer"])
    again = allocator.allocate(ALICE)
    assert again["status"] == "ready" and again["profile"] == "comfyui-a100"


def test_a_switch_ends_the_old_session_first_and_never_leaves_two(store, m_agones, groups):
    _warm(m_agones)
    allocator = _allocator(store, m_agones, groups)
    first = allocator.allocate(ALICE, profile="a1111-l4")
    assert first["profile"] == "a1111-l4"
    seen = []
    m_agones.after_request = lambda method, path, status: seen.append(
        (method, path.split("/")[-1], len(_held_by(m_agones, ALICE))))
    second = allocator.allocate(ALICE, profile="comfyui-a100", switch=True)
    m_agones.after_request = None
    assert second["status"] == "ready" and second["profile"] == "comfyui-a100"
    assert m_agones.game_server(first["gameServer"]) is None
    assert [g["metadata"]["name"] for g in _held_by(m_agones, ALICE)] == [second["gameServer"]]
    assert max(held for _, _, held in seen) == 1            # never two at any step
    deleted = [i for i, (m, name, _) in enumerate(seen) if m == "DELETE"]
    allocated = [i for i, (m, name, _) in enumerate(seen) if name == "gameserverallocations"]
    assert deleted and allocated and deleted[0] < allocated[0]
    usage = store.client.xrange(store.usage_key)
    assert [entry["reason"] for _, entry in usage] == ["switched"]
    # Asking for the profile one already has changes nothing.
    same = allocator.allocate(ALICE, profile="comfyui-a100", switch=True)
    assert same["gameServer"] == second["gameServer"]


def test_a_profile_the_person_may_not_use_is_refused_by_the_allocator(store, m_agones, groups):
    _warm(m_agones)
    allocator = _allocator(store, m_agones, groups)
    answer = allocator.allocate(BOB, profile="comfyui-a100", switch=True)
    assert answer["status"] == "refused" and answer["reason"] == "not-a-member"
    assert "ComfyUI on an A100" in answer["message"]
    assert [p["name"] for p in answer["profiles"]] == ["a1111-l4"]
    assert _held_by(m_agones, BOB) == []
    carol = allocator.allocate(CAROL, profile="comfyui-a100")   # named as a user
    assert carol["status"] == "ready"
    unknown = allocator.allocate(BOB, profile="no-such-profile")
    assert unknown["status"] == "refused" and unknown["reason"] == "unknown-profile"


def test_group_api_down_refuses_never_admits_and_answers_are_cached(store, m_agones, groups):
    _warm(m_agones)
    now = [1000.0]
    allocator = _allocator(store, m_agones, groups)
    allocator.membership.clock = lambda: now[0]
    groups.status = 403
    answer = allocator.allocate(ALICE, profile="comfyui-a100")
    assert answer["status"] == "refused" and answer["reason"] == "membership-unknown"
    assert "cannot be checked" in answer["message"]
    assert _held_by(m_agones, ALICE) == []
    groups.status = 200
    calls = len(groups.calls)
    assert allocator.allocate(ALICE, profile="comfyui-a100")["status"] == "ready"
    asked = len(groups.calls) - calls
    assert asked == 2                                        # lookup + check
    allocator.offer(ALICE)
    assert len(groups.calls) - calls == asked                # cached
    now[0] += 61                                             # past the cache's TTL
    groups.members["comfy@example.com"].clear()
    assert [p["name"] for p in allocator.offer(ALICE)["profiles"]] == ["a1111-l4"]


def test_no_gpu_capacity_is_said_with_the_other_profiles(store, m_agones, groups, capsys):
    allocator = _allocator(store, m_agones, groups)
    m_agones.add_ready(f"{A1111}-x-0", port=7100, fleet=A1111)
    m_agones.add_game_server(f"{COMFY}-x-0", state="Starting", fleet=COMFY)
    m_agones.add_pod_event(
        f"{COMFY}-x-0", "FailedScaleUp",
        "Node scale up in zones us-central1-a associated with this pod failed: GCE out of "
        "resources. Pod is at risk of not being scheduled.")
    for _ in range(2):
        answer = allocator.allocate(ALICE, profile="comfyui-a100")
    assert answer["status"] == "pending" and answer["phase"] == "no-capacity"
    assert answer["message"].startswith("No A100 40GB GPUs are available in us-central1 right now")
    assert [p["name"] for p in answer["alternatives"]] == ["a1111-l4"]
    assert answer["alternatives"][0]["readyNow"] is True
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()
              if '"no GPU capacity"' in line]
    assert len(logged) == 1 and logged[0]["kind"] == "stock-out"   # once, not per poll


def test_admit_table():
    def profile(access):
        return Profile("p", "P", "", "", "", "", "f", access, 1, 1.0, True)
    groups = {"g@example.com": True, "h@example.com": False, "down@example.com": None}
    cases = [
        (None, "x@other.org", True, ""),
        (("user:x@other.org",), "X@Other.org", True, ""),
        (("domain:example.com",), "y@example.com", True, ""),
        (("domain:example.com",), "y@sub.example.com", False, "not-a-member"),
        (("group:g@example.com",), "z@example.com", True, ""),
        (("group:h@example.com",), "z@example.com", False, "not-a-member"),
        (("group:down@example.com",), "z@example.com", False, "membership-unknown"),
        (("group:down@example.com", "group:g@example.com"), "z@example.com", True, ""),
        (("group:down@example.com", "user:z@example.com"), "z@example.com", True, ""),
    ]
    for access, email, allowed, reason in cases:
        got = admit(email, profile(access), lambda g: groups[g])
        assert (got.allowed, got.reason) == (allowed, reason), (access, email)


def test_choose_table():
    a = Profile("a", "A", "", "", "", "", "fa", None, 1, 1.0, True)
    b = Profile("b", "B", "", "", "", "", "fb", None, 1, 1.0, False)
    yes, no = admit("x@e.com", a, lambda g: None), admit("x@e.com", Profile(
        "n", "N", "", "", "", "", "f", ("user:other@e.com",), 1, 1.0, False), lambda g: None)
    both, only_a = {"a": yes, "b": yes}, {"a": yes, "b": no}
    assert choose([a, b], both, None, None).ask
    assert choose([a, b], both, "b", None).profile is b
    assert choose([a, b], only_a, "b", None).profile is a      # remembered but no longer allowed
    assert choose([a, b], only_a, None, "b").refused == no
    assert choose([a, b], {"a": no, "b": no}, None, None).refused.reason == "no-profile"


def test_capacity_reasons_table():
    p = Profile("p", "P", "", "", "L4", "us-central1", "f", None, 1, 1.0, True)
    now = 10_000.0
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 5))
    old = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))

    def event(reason, message, at=stamp):
        return {"reason": reason, "message": message, "lastTimestamp": at}
    cases = [
        ([event("FailedScaleUp", "...failed: GCE quota exceeded. Pod is at risk...")], "quota"),
        ([event("FailedScaleUp", "...: GCE out of resources. Pod is at risk...")], "stock-out"),
        ([event("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 max node group size reached")],
         "pool-at-maximum"),
        ([event("NotTriggerScaleUp", "pod didn't trigger scale-up: 1 in backoff after failed scale-up")],
         "backoff"),
        ([event("NotTriggerScaleUp", "pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector")],
         None),
        ([event("TriggeredScaleUp", "pod triggered scale-up: [{gpu 0->1 (max: 4)}]")], None),
        ([event("FailedScaleUp", "...: GCE quota exceeded.", at=old)], None),
    ]
    for events, kind in cases:
        got = capacity_problem(events, p, now)
        assert (got.kind if got else None) == kind, events
    assert capacity_problem(cases[0][0], p, now).message.startswith(
        "No L4 GPUs are available in us-central1 right now (the project's GPU quota is used up)")
