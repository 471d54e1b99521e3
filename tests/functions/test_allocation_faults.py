"""Exactly one game server per person when the Kubernetes API fails after the side effect,
and the client never retries the allocation POST blindly.

In-process: the real Allocator and AgonesClient against a real redis-server and the Agones
emulator, whose faults apply the request first and then lose, fail or delay its answer.
"""

from __future__ import annotations

import threading

import pytest
from allocation import Allocator
from shared.agones import AgonesClient, AllocationOutcomeUnknown, KubernetesUnavailable
from shared.config import AllocatorSettings, KubernetesSettings
from shared.state import Mapping, SessionStore
from shared.verifier import Identity

from tests.functions.conftest import FLEET

ALICE = Identity("g-100000000000000000001", "accounts.google.com:100000000000000000001",
                 "alice@example.com")
ALLOCATIONS = "gameserverallocations"


@pytest.fixture
def store(m_redis_client, clean):
    return SessionStore(m_redis_client, "sdfleet:")


def _client(agones, timeout: int = 5) -> AgonesClient:
    return AgonesClient(KubernetesSettings(
        api_url=agones.url, ca_file=None, ca_data=None, token=agones.token,
        namespace=agones.namespace, fleet=FLEET, port_name="webui", timeout_seconds=timeout,
        workers=4))


def _allocator(store, client, lock_seconds: int = 20) -> Allocator:
    return Allocator(store, client, AllocatorSettings(
        iap_audience="aud", iap_certs_url="https://keys.invalid", clock_skew_seconds=30,
        lock_seconds=lock_seconds, lock_wait_seconds=2))


def _allocated_for(agones, identity_id: str) -> list[str]:
    return [g["metadata"]["name"] for g in agones.game_servers("Allocated")
            if g["metadata"]["labels"].get("sdfleet.dev/identity") == identity_id]


@pytest.mark.parametrize("mode,status", [("status", 503), ("status", 500), ("drop", None)])
def test_a_lost_allocation_answer_never_makes_a_second_game_server(store, m_agones, mode, status):
    """14.5: the POST is applied, then its answer is a 5xx or the connection drops. Before
    the fix the client retried the POST and the person held two Allocated game servers."""
    for i in range(3):
        m_agones.add_ready(f"gs-{i}", port=7000 + i)
    m_agones.fail_after(mode=mode, status=status or 503, method="POST", path_contains=ALLOCATIONS)
    answer = _allocator(store, _client(m_agones)).allocate(ALICE)
    assert answer["status"] == "ready", answer
    assert _allocated_for(m_agones, ALICE.id) == [answer["gameServer"]]
    assert m_agones.calls[("POST", "allocation")] == 1      # looked up, not asked again
    assert store.mapping(ALICE.id).gs == answer["gameServer"]


def test_a_timed_out_allocation_is_found_by_label_not_repeated(store, m_agones):
    """14.5, timeout: the answer arrives after the client's 1 s read timeout."""
    for i in range(3):
        m_agones.add_ready(f"gs-{i}", port=7000 + i)
    m_agones.fail_after(mode="delay", delay=1.6, method="POST", path_contains=ALLOCATIONS)
    answer = _allocator(store, _client(m_agones, timeout=1)).allocate(ALICE)
    assert answer["status"] == "ready", answer
    assert _allocated_for(m_agones, ALICE.id) == [answer["gameServer"]]
    assert m_agones.calls[("POST", "allocation")] == 1


def test_a_5xx_before_the_side_effect_is_asked_again_after_the_lookup(store, m_agones):
    """Nothing was applied: the lookup finds nothing and the second POST allocates."""
    m_agones.add_ready("gs-0")
    m_agones.fail_next(503, method="POST", path_contains=ALLOCATIONS)
    answer = _allocator(store, _client(m_agones)).allocate(ALICE)
    assert answer["status"] == "ready"
    assert _allocated_for(m_agones, ALICE.id) == ["gs-0"]
    assert m_agones.calls[("POST", "allocation")] == 1      # the faulted one is not counted
    assert m_agones.calls[("GET", "list")] >= 2            # adopt check + lookup after fault


def test_the_client_never_retries_the_post_itself(m_agones, clean):
    """17.11: the transport used to repeat the POST on a 5xx; now the caller decides."""
    m_agones.add_ready("gs-0")
    m_agones.add_ready("gs-1")
    m_agones.fail_after(mode="status", status=502, method="POST", path_contains=ALLOCATIONS)
    with pytest.raises(AllocationOutcomeUnknown):
        _client(m_agones).allocate(ALICE.id, ALICE.email, 1.0)
    assert len(m_agones.game_servers("Allocated")) == 1


def test_a_429_was_not_applied_and_is_retried_by_the_client(m_agones, clean):
    m_agones.add_ready("gs-0")
    m_agones.fail_next(429, method="POST", path_contains=ALLOCATIONS)
    allocation = _client(m_agones).allocate(ALICE.id, ALICE.email, 1.0)
    assert allocation.state == "Allocated" and allocation.game_server == "gs-0"


def test_every_attempt_inconclusive_is_503_and_still_one_game_server(store, m_agones):
    """The API applies nothing visible and keeps failing after: bounded, then 503."""
    for i in range(4):
        m_agones.add_ready(f"gs-{i}", port=7000 + i)
    m_agones.fail_next(500, count=10, method="POST", path_contains=ALLOCATIONS)
    with pytest.raises(KubernetesUnavailable):
        _allocator(store, _client(m_agones)).allocate(ALICE)
    assert _allocated_for(m_agones, ALICE.id) == []
    assert store.mapping(ALICE.id) is None


def test_expired_lock_b_adopts_and_a_never_deletes_it(store, m_agones):
    """14.6: A's lock expires while its POST runs; B takes the lock, adopts A's fresh game
    server and maps it. Before the fix A, finding its lock gone, deleted that game server:
    B's person was mapped to a deleted pod."""
    m_agones.add_ready("gs-0")
    m_agones.add_ready("gs-1", port=7001)
    b_answers = []

    def b_runs_while_a_waits(method, path, status):
        if method == "POST" and ALLOCATIONS in path and not b_answers:
            store.client.delete(store.lock_key(ALICE.id))       # A's lock expires
            b_answers.append(_allocator(store, _client(m_agones)).allocate(ALICE))

    m_agones.after_request = b_runs_while_a_waits
    a_answer = _allocator(store, _client(m_agones)).allocate(ALICE)
    m_agones.after_request = None
    (b_answer,) = b_answers
    assert b_answer["status"] == "ready" and b_answer["gameServer"] == "gs-0"
    assert m_agones.game_server("gs-0") is not None, "A deleted the game server B adopted"
    assert _allocated_for(m_agones, ALICE.id) == ["gs-0"]
    assert store.mapping(ALICE.id).gs == "gs-0"
    assert a_answer["status"] == "ready" and a_answer["gameServer"] == "gs-0"


def test_expired_lock_holder_busy_leaves_the_game_server_for_it(store, m_agones):
    """A's lock is taken by someone still working: A neither deletes nor maps its game
    server; the holder (or the culler's orphan rule) settles it."""
    m_agones.add_ready("gs-0")

    def someone_takes_the_lock(method, path, status):
        if method == "POST" and ALLOCATIONS in path:
            store.client.set(store.lock_key(ALICE.id), "someone-else", px=10_000)

    m_agones.after_request = someone_takes_the_lock
    answer = _allocator(store, _client(m_agones)).allocate(ALICE)
    m_agones.after_request = None
    assert answer["status"] == "pending"
    assert _allocated_for(m_agones, ALICE.id) == ["gs-0"]      # not deleted
    assert store.mapping(ALICE.id) is None                     # not written without the lock
    assert store.client.get(store.lock_key(ALICE.id)) == "someone-else"


def test_a_duplicate_made_after_losing_the_lock_is_returned_under_a_new_lock(store, m_agones):
    """A's lock expired and someone else mapped the person to another live game server:
    A's fresh one is a duplicate, deleted only once A holds the lock again."""
    m_agones.add_ready("gs-0")
    m_agones.add_ready("gs-1", port=7001)
    done = threading.Event()

    def other_allocation(method, path, status):
        # A's POST has just allocated gs-0; meanwhile A's lock expires and another call
        # gives the person gs-1 and maps it.
        if method == "POST" and ALLOCATIONS in path and not done.is_set():
            done.set()
            store.client.delete(store.lock_key(ALICE.id))
            m_agones.add_game_server("gs-1", "Allocated", port=7001,
                                     labels={"sdfleet.dev/identity": ALICE.id})
            token = store.acquire_lock(ALICE.id, 5000)
            assert store.record_allocation(ALICE.id, token, Mapping(
                "gs-1", "127.0.0.1:7001", 1.0, ALICE.sub, ALICE.email), 1.0)
            store.release_lock(ALICE.id, token)

    m_agones.after_request = other_allocation
    answer = _allocator(store, _client(m_agones)).allocate(ALICE)
    m_agones.after_request = None
    assert answer["status"] == "ready" and answer["gameServer"] == "gs-1"
    assert _allocated_for(m_agones, ALICE.id) == ["gs-1"]
    assert m_agones.game_server("gs-0") is None


def test_a_lost_lock_stops_the_allocation_before_the_post(store, m_agones):
    """Fencing before the Kubernetes write: a holder whose token is gone does not POST."""
    m_agones.add_ready("gs-0")
    allocator = _allocator(store, _client(m_agones))
    token = store.acquire_lock(ALICE.id, 10_000)
    store.client.set(store.lock_key(ALICE.id), "new-holder", px=10_000)
    answer = allocator._allocate_locked(ALICE, token)
    assert answer["status"] == "pending"
    assert m_agones.calls[("POST", "allocation")] == 0
    assert m_agones.game_servers("Allocated") == []


def test_stale_mapping_drop_is_fenced_by_the_token(store, m_agones):
    token = store.acquire_lock(ALICE.id, 10_000)
    assert store.record_allocation(ALICE.id, token, Mapping(
        "gs-gone", "127.0.0.1:7000", 1.0, ALICE.sub, ALICE.email), 1.0)
    assert not store.drop_mapping_if(ALICE.id, "gs-gone", "not-the-token")
    assert store.mapping(ALICE.id) is not None
    assert store.drop_mapping_if(ALICE.id, "gs-gone", token)
    assert store.mapping(ALICE.id) is None
