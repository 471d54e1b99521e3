"""GPU-hour budgets: the allocator refuses a person over budget with what they used, what
they may, when it resets and whom to ask; a person under budget gets a session that ends
when the budget does (annotated for the pod's banner, indexed for the culler), and the
culler ends it then with reason `budget`, counting its GPU-seconds into the month.

In-process: the real Allocator and CullPass against a real redis-server and the emulator."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from allocation import Allocator
from allocator_rules import Budget, budget_of, within_budget
from cull_pass import CullPass
from shared.agones import AgonesClient
from shared.budgets import Budgets, load_budgets, next_month_start
from shared.config import AllocatorSettings, CullerSettings, KubernetesSettings
from shared.state import SessionStore
from shared.verifier import Identity

from tests.functions.conftest import FLEET

ALICE = Identity("g-100000000000000000001", "accounts.google.com:100000000000000000001",
                 "alice@example.com")
BUDGETS = {"defaultGpuHours": 2, "members": [{"member": "user:alice@example.com", "gpuHours": 1}],
           "contact": "#gpu-help"}


@pytest.fixture
def store(m_redis_client, clean):
    return SessionStore(m_redis_client, "sdfleet:")


def _client(agones) -> AgonesClient:
    return AgonesClient(KubernetesSettings(
        api_url=agones.url, ca_file=None, ca_data=None, token=agones.token,
        namespace=agones.namespace, fleet=FLEET, port_name="webui", timeout_seconds=5, workers=4))


def _allocator(store, agones, clock) -> Allocator:
    return Allocator(store, _client(agones), AllocatorSettings(
        iap_audience="aud", iap_certs_url="https://keys.invalid", clock_skew_seconds=30,
        lock_seconds=20, lock_wait_seconds=2,
        budgets=load_budgets({"SDFLEET_BUDGETS": json.dumps(BUDGETS)})), clock=clock)


def test_over_budget_is_refused_with_used_allowed_reset_and_whom_to_ask(store, m_agones):
    now = time.time()
    m_agones.add_ready("gs-0", port=7000)
    store.client.hset(store.month_key(now), ALICE.id, 3600 * 1.25)    # 1.25 of her 1 hour
    answer = _allocator(store, m_agones, lambda: now).allocate(ALICE)
    assert answer["status"] == "refused" and answer["reason"] == "over-budget"
    assert "You have used 1.2 of your 1 GPU-hours this month" in answer["message"]
    assert "(UTC)" in answer["message"] and "#gpu-help" in answer["message"]
    assert m_agones.game_servers("Allocated") == []                     # nothing started


def test_a_session_ends_when_the_budget_does(store, m_agones):
    now = time.time()
    m_agones.add_ready("gs-0", port=7000)
    store.client.hset(store.month_key(now), ALICE.id, 3000)             # 600 s of 3600 left
    answer = _allocator(store, m_agones, lambda: now).allocate(ALICE)
    assert answer["status"] == "ready"
    gs = m_agones.game_server("gs-0")
    ends = float(gs["metadata"]["annotations"]["sdfleet.dev/budget-ends-at"])
    assert ends == pytest.approx(now + 600, abs=0.01)                   # for the pod's banner
    assert store.mapping(ALICE.id).budget_ends_at == pytest.approx(ends)
    assert store.client.zscore(store.budget_ends_key, ALICE.id) == pytest.approx(ends)

    settings = CullerSettings(idle_seconds=3600, max_session_seconds=8 * 3600,
                              orphan_grace_seconds=120, pass_budget_seconds=30,
                              batch_limit=5000, reconcile_page_size=100,
                              reconcile_mappings_per_pass=0, invoker_audience="aud",
                              invoker_emails=("x@example.com",), oidc_certs_url="https://k.invalid")
    store.client.zadd(store.activity_key, {ALICE.id: now + 590})        # active all along
    with ThreadPoolExecutor(4) as pool:
        before = CullPass(store, _client(m_agones), settings, pool, clock=lambda: now + 590).run()
        assert before["culled"] == {} and store.mapping(ALICE.id) is not None
        after = CullPass(store, _client(m_agones), settings, pool, clock=lambda: now + 601).run()
    assert after["culled"] == {"budget": 1}
    assert store.mapping(ALICE.id) is None
    assert m_agones.game_server("gs-0") is None
    assert store.client.zscore(store.budget_ends_key, ALICE.id) is None
    month = float(store.client.hget(store.month_key(now + 601), ALICE.id))
    assert month == pytest.approx(3000 + 601, abs=1)                    # counted into the month


def test_budget_rules_table():
    budgets = Budgets(10.0, (("user:a@x.com", 3.0, None), ("group:g@x.com", 50.0, None),
                             ("group:h@x.com", 20.0, None), ("domain:x.com", 5.0, None),
                             ("domain:x.com", 1.0, "big")), "ops")
    members = {("b@x.com", "h@x.com")}                                   # b is in h only
    cases = [("a@x.com", Budget(3.0, "user:a@x.com")),                   # user beats group
             ("b@x.com", Budget(20.0, "group:h@x.com", pool="h@x.com")),  # their group's pool
             ("c@y.org", Budget(10.0, "default"))]
    for email, expected in cases:
        got = budget_of(email, budgets, lambda g, email=email: (email, g) in members)
        assert got == expected, email
    assert budget_of("d@x.com", budgets, lambda g: False) == Budget(5.0, "domain:x.com")
    assert budget_of("d@x.com", None, lambda g: True) is None
    # A profile's own entry comes first for that profile, and only for it.
    assert budget_of("d@x.com", budgets, lambda g: False, "big") == Budget(1.0, "domain:x.com",
                                                                          profile="big")
    assert budget_of("d@x.com", budgets, lambda g: False, "small") == Budget(5.0, "domain:x.com")
    # A group that cannot be checked does not give its budget; the next one applies.
    assert budget_of("e@x.com", budgets, lambda g: None) == Budget(5.0, "domain:x.com")
    now = 1_000_000.0
    over = within_budget(3600.0, Budget(1.0, "default"), 1.0, now, next_month_start(now), "ops")
    assert not over.allowed and "ask ops" in over.message
    under = within_budget(1800.0, Budget(1.0, "default"), 0.5, now, next_month_start(now), "ops")
    assert under.allowed and under.ends_at == pytest.approx(now + 3600)  # half a GPU: twice as long
    assert within_budget(10 ** 9, None, 1.0, now, now, "ops").allowed
    assert next_month_start(1798761599.0) == 1798761600.0               # 2026-12-31T23:59:59Z


GROUP = {"members": [{"member": "group:team@example.com", "gpuHours": 1}], "contact": "ops"}
BOB = Identity("g-100000000000000000002", "accounts.google.com:100000000000000000002",
               "bob@example.com")


class Members:
    """Both are in team@example.com (the Cloud Identity answer, without the API)."""

    def is_member(self, group, email):
        return group == "team@example.com"


def _group_allocator(store, agones, clock=time.time) -> Allocator:
    return Allocator(store, _client(agones), AllocatorSettings(
        iap_audience="aud", iap_certs_url="https://keys.invalid", clock_skew_seconds=30,
        lock_seconds=20, lock_wait_seconds=2, max_session_seconds=8 * 3600,
        budgets=load_budgets({"SDFLEET_BUDGETS": json.dumps(GROUP)})),
        clock=clock, membership=Members())


def test_a_groups_last_hour_goes_to_one_of_two_members_starting_at_once(store, m_agones):
    import threading
    for i in range(4):
        m_agones.add_ready(f"gs-{i}", port=7000 + i)
    allocator = _group_allocator(store, m_agones)
    answers, start = {}, threading.Barrier(2)

    def go(who):
        start.wait()
        answers[who.email] = allocator.allocate(who)
    threads = [threading.Thread(target=go, args=(p,)) for p in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    statuses = sorted(a["status"] for a in answers.values())
    assert statuses == ["ready", "refused"], answers
    loser = next(a for a in answers.values() if a["status"] == "refused")
    assert loser["reason"] == "over-budget" and "team@example.com" in loser["message"]
    assert len(m_agones.game_servers("Allocated")) == 1
    held = {k: float(v) for k, v in store.client.hgetall(store.reserved_key).items()}
    assert list(held.values()) == [pytest.approx(3600)]                   # the whole hour held


def test_a_group_session_charges_the_group_and_gives_back_what_it_held(store, m_agones):
    now = time.time()
    m_agones.add_ready("gs-0", port=7000)
    allocator = _group_allocator(store, m_agones, clock=lambda: now)
    assert allocator.allocate(ALICE)["status"] == "ready"
    mapping = store.mapping(ALICE.id)
    assert mapping.budget_pool == "team@example.com" and mapping.budget_reserved == 3600
    assert mapping.budget_ends_at == pytest.approx(now + 3600)
    from shared.state import usage_record
    usage = usage_record(ALICE.id, mapping.gs, now, now + 900, "idle")
    assert store.finish_sessions([(ALICE.id, mapping.gs, usage)]) == [True]
    month = store.client.hgetall(store.month_key(now + 900))
    assert float(month["budget:team@example.com"]) == pytest.approx(900)
    (_, entry), = store.client.xrange(store.usage_key)
    assert entry["email"] == "alice@example.com" and entry["gs"] == mapping.gs   # tools.usage
    assert entry["group"] == "team@example.com"
    assert float(month[ALICE.id]) == pytest.approx(900)
    held = {k: float(v) for k, v in store.client.hgetall(store.reserved_key).items()}
    assert list(held.values()) == [pytest.approx(0)]
    # Bob now gets what is left: 45 minutes.
    m_agones.add_ready("gs-1", port=7001)
    answer = _group_allocator(store, m_agones, clock=lambda: now + 900).allocate(BOB)
    assert answer["status"] == "ready"
    assert store.mapping(BOB.id).budget_ends_at == pytest.approx(now + 900 + 2700)


def test_a_group_reservation_is_given_back_when_no_pod_can_be_had(store, m_agones):
    allocator = _group_allocator(store, m_agones)                        # no Ready pod at all
    answer = allocator.allocate(ALICE)
    assert answer["status"] == "pending"
    held = {k: float(v) for k, v in store.client.hgetall(store.reserved_key).items()}
    assert all(v == pytest.approx(0) for v in held.values())


def test_a_profile_budget_caps_only_that_profiles_sessions(store, m_agones):
    """2 GPU-hours a month for ComfyUI on the A100 only; the default applies elsewhere."""
    import json as _json

    from shared.profiles import load_profiles
    profiles = [
        {"name": "a1111", "fleet": "sdfleet-webui-a1111", "default": True, "gpu": "L4"},
        {"name": "comfy", "fleet": "sdfleet-webui-comfy", "gpu": "A100"}]
    budgets = {"defaultGpuHours": 40, "contact": "ops",
               "members": [{"member": "domain:example.com", "gpuHours": 2, "profile": "comfy"}]}
    now = time.time()
    client = AgonesClient(KubernetesSettings(
        api_url=m_agones.url, ca_file=None, ca_data=None, token=m_agones.token,
        namespace=m_agones.namespace, fleet="sdfleet-webui-a1111",
        fleets=("sdfleet-webui-a1111", "sdfleet-webui-comfy"), port_name="webui",
        timeout_seconds=5, workers=4))
    allocator = Allocator(store, client, AllocatorSettings(
        iap_audience="aud", iap_certs_url="https://keys.invalid", clock_skew_seconds=30,
        lock_seconds=20, lock_wait_seconds=2,
        profiles=tuple(load_profiles({"SDFLEET_PROFILES": _json.dumps(profiles)}, None)),
        budgets=load_budgets({"SDFLEET_BUDGETS": _json.dumps(budgets)})), clock=lambda: now)
    m_agones.add_ready("sdfleet-webui-comfy-a-0", port=7000, fleet="sdfleet-webui-comfy")
    m_agones.add_ready("sdfleet-webui-a1111-a-0", port=7001, fleet="sdfleet-webui-a1111")
    store.client.hset(store.month_key(now), mapping={f"{ALICE.id}@comfy": 2 * 3600 + 1,
                                                      ALICE.id: 2 * 3600 + 1})
    comfy = allocator.allocate(ALICE, profile="comfy")
    assert comfy["status"] == "refused" and "of profile comfy" in comfy["message"]
    a1111 = allocator.allocate(ALICE, profile="a1111")
    assert a1111["status"] == "ready"                          # 2 of the default 40 used
    mapping = store.mapping(ALICE.id)
    assert mapping.profile == "a1111"
    assert mapping.budget_ends_at == pytest.approx(now + 38 * 3600 - 1)
    from shared.state import usage_record
    store.finish_sessions([(ALICE.id, mapping.gs, usage_record(ALICE.id, mapping.gs, now,
                                                               now + 60, "idle"))])
    month = store.client.hgetall(store.month_key(now))
    assert float(month[f"{ALICE.id}@a1111"]) == pytest.approx(60)   # counted per profile too


def test_a_reset_day_moves_the_budget_month_for_the_ledger_and_the_reset_date(m_redis_client):
    import calendar

    from shared.budgets import next_month_start, period_label
    on_14th = calendar.timegm((2026, 12, 14, 23, 0, 0))
    on_15th = calendar.timegm((2026, 12, 15, 0, 30, 0))
    assert period_label(on_14th, 15) == "2026-11" and period_label(on_15th, 15) == "2026-12"
    assert next_month_start(on_14th, 15) == calendar.timegm((2026, 12, 15, 0, 0, 0))
    assert next_month_start(on_15th, 15) == calendar.timegm((2027, 1, 15, 0, 0, 0))
    assert period_label(calendar.timegm((2027, 1, 3, 0, 0, 0)), 15) == "2026-12"
    store = SessionStore(m_redis_client, "sdfleet:", reset_day=15)
    assert store.month_key(on_14th) == "sdfleet:usage:2026-11"      # the culler's and the
    assert store.month_key(on_15th) == "sdfleet:usage:2026-12"      # allocator's key agree
    assert load_budgets({"SDFLEET_BUDGETS": json.dumps({**BUDGETS, "resetDay": 15})}).reset_day == 15
