"""The ledger is counted once per session whatever the interleaving: two culler passes (or a
pass and a profile switch) ending the same sessions at once, a pass killed between its claim
and its end and the next pass finishing for it. Each session's GPU-seconds reach its
person's month (and its group's, with a shared budget) exactly once, and every hold on a
group's budget is given back."""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared.state import Mapping, SessionStore, usage_record

NOW = 1_796_500_000.0


def _seed(store: SessionStore, n: int, pools: list[bool], gpu: list[int]) -> list[tuple]:
    ended = []
    for i in range(n):
        id_ = f"g-{10 ** 9 + i}"
        pool = "team@example.com" if pools[i] else None
        mapping = Mapping(f"gs-{i}", f"10.0.0.{i % 250}:7860", NOW - gpu[i], f"accounts.google.com:{i}",
                          f"p{i}@example.com", budget_pool=pool,
                          budget_reserved=3600.0 if pool else None,
                          budget_reserved_in="2026-12|team@example.com" if pool else None)
        token = store.acquire_lock(id_, 10_000)
        assert store.record_allocation(id_, token, mapping, NOW - gpu[i])
        store.release_lock(id_, token)
        if pool:
            store.client.hincrbyfloat(store.reserved_key, "2026-12|team@example.com", 3600.0)
        ended.append((id_, mapping.gs, usage_record(id_, mapping.gs, NOW - gpu[i], NOW, "idle")))
    return ended


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 12), data=st.data())
def test_concurrent_ends_count_each_session_once(m_redis_client, n, data):
    m_redis_client.flushall()
    store = SessionStore(m_redis_client, "sdfleet:")
    pools = data.draw(st.lists(st.booleans(), min_size=n, max_size=n))
    gpu = data.draw(st.lists(st.integers(1, 7200), min_size=n, max_size=n))
    ended = _seed(store, n, pools, gpu)
    # Two enders, each with its own (random) subset and order of the same sessions.
    parts = [data.draw(st.permutations(ended)) for _ in range(2)]
    parts = [p[: data.draw(st.integers(0, n))] for p in parts]
    barrier = threading.Barrier(2)

    def end(part):
        barrier.wait()
        for item in part:
            store.finish_sessions([item])
    threads = [threading.Thread(target=end, args=(p,)) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    done = {item[0] for p in parts for item in p}
    month = {k: float(v) for k, v in store.client.hgetall(store.month_key(NOW)).items()}
    for (id_, _, usage), in_pool in zip(ended, pools):
        expected = usage["gpu_seconds"] if id_ in done else None
        assert month.get(id_) == (pytest.approx(expected) if expected is not None else None)
    pooled = sum(u["gpu_seconds"] for (id_, _, u), p in zip(ended, pools) if p and id_ in done)
    assert month.get("budget:team@example.com", 0.0) == pytest.approx(pooled)
    held = float(store.client.hget(store.reserved_key, "2026-12|team@example.com") or 0.0)
    assert held == pytest.approx(3600.0 * sum(1 for (id_, _, _), p in zip(ended, pools)
                                              if p and id_ not in done))
    assert len(store.client.xrange(store.usage_key)) == len(done)


def test_a_pass_killed_after_its_claim_is_finished_by_the_next(m_redis_client):
    m_redis_client.flushall()
    store = SessionStore(m_redis_client, "sdfleet:")
    (id_, gs, usage), = _seed(store, 1, [True], [1800])
    # The first pass claims (lock + culling mark) and dies before ending the session.
    seen = store.client.zscore(store.activity_key, id_)
    assert store.claim_culls([(id_, gs, seen)], NOW, "dead-pass", 50) == [1]
    time.sleep(0.1)                                                   # its claim's lock expires
    assert store.finish_sessions([(id_, gs, usage)], "next-pass") == [True]
    assert store.finish_sessions([(id_, gs, usage)], "late-pass") == [False]   # never twice
    month = store.client.hgetall(store.month_key(NOW))
    assert float(month[id_]) == pytest.approx(1800)
    assert float(month["budget:team@example.com"]) == pytest.approx(1800)
    assert float(store.client.hget(store.reserved_key, "2026-12|team@example.com")) == pytest.approx(0)
