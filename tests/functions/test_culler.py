"""The culler under a real functions-framework, against real Redis and the emulator.

Sessions are seeded the way the allocator writes them (docs/contracts.md section 2), with
back-dated timestamps; the game servers sit Allocated in the emulator.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.functions.conftest import CULLER_AUDIENCE, CULLER_SA, call

P = "sdfleet:"


def invoker_token(iap, email=CULLER_SA, audience=CULLER_AUDIENCE):
    return iap.mint(sub="109876543210", email=email, audience=audience,
                    issuer="https://accounts.google.com", extra={"email_verified": True})


def run_pass(culler, iap):
    status, body, _ = call("POST", culler.url + "/cull",
                           {"Authorization": f"Bearer {invoker_token(iap)}"})
    assert status == 200, body
    return body


def seed(r, agones, id_, gs, *, allocated_ago, active_ago, port=7000, state="Allocated"):
    now = time.time()
    allocated_at = now - allocated_ago
    agones.add_game_server(gs, state=state, port=port, labels={"sdfleet.dev/identity": id_},
                           annotations={"sdfleet.dev/allocated-at": repr(allocated_at)})
    r.hset(f"{P}map:{id_}", mapping={"gs": gs, "target": f"127.0.0.1:{port}",
                                     "allocated_at": repr(allocated_at),
                                     "sub": f"accounts.google.com:{id_[2:]}", "email": "x@example.com"})
    r.zadd(f"{P}activity", {id_: now - active_ago})
    r.zadd(f"{P}sessions", {id_: allocated_at})
    return allocated_at


def usage_entries(r):
    return [fields for _, fields in r.xrange(f"{P}usage")]


def test_idle_is_culled_active_is_kept_with_usage_record(culler, clean, m_iap, m_agones,
                                                         m_redis_client):
    r = m_redis_client
    start = seed(r, m_agones, "g-1", "gs-idle", allocated_ago=3000, active_ago=1000)
    seed(r, m_agones, "g-2", "gs-busy", allocated_ago=3000, active_ago=10)
    summary = run_pass(culler, m_iap)
    assert summary["culled"] == {"idle": 1}
    assert summary["kept"].get("active") == 1
    assert m_agones.game_server("gs-idle") is None
    assert m_agones.game_server("gs-busy")["status"]["state"] == "Allocated"
    assert not r.exists(f"{P}map:g-1")
    assert r.zscore(f"{P}activity", "g-1") is None and r.zscore(f"{P}sessions", "g-1") is None
    assert r.exists(f"{P}map:g-2") and r.zscore(f"{P}activity", "g-2") is not None
    [usage] = usage_entries(r)
    assert usage["id"] == "g-1" and usage["gs"] == "gs-idle" and usage["reason"] == "idle"
    assert float(usage["start"]) == pytest.approx(start, abs=0.01)
    assert float(usage["seconds"]) == pytest.approx(3000, abs=10)
    assert float(usage["gpu_seconds"]) == pytest.approx(3000, abs=10)  # one GPU per pod here
    lines = [json.loads(l) for l in culler.log().splitlines() if l.startswith("{")]
    ended = [l for l in lines if l.get("message") == "session ended" and l.get("id") == "g-1"]
    assert ended and ended[-1]["gpu_seconds"] == pytest.approx(3000, abs=10)
    # counted for the person's month, in the same script that ended the session
    month = time.strftime("%Y-%m", time.gmtime())
    assert float(r.hget(f"{P}usage:{month}", "g-1")) == pytest.approx(3000, abs=10)
    assert r.hget(f"{P}usage:{month}", "g-2") is None
    # a second pass has nothing left to do
    again = run_pass(culler, m_iap)
    assert again["culled"] == {} and len(usage_entries(r)) == 1


def test_activity_arriving_during_the_pass_keeps_the_session(culler, clean, m_iap, m_agones,
                                                             m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    seed(r, m_agones, "g-3", "gs-3", allocated_ago=3000, active_ago=1000)
    fired = []

    def person_comes_back(method, path):
        # The pass has read its candidates and is now listing the fleet.
        if method == "GET" and path.endswith("/gameservers") and not fired:
            r.zadd(f"{P}activity", {"g-1": time.time()})
            fired.append(path)

    m_agones.on_request = person_comes_back
    summary = run_pass(culler, m_iap)
    assert fired, "the hook must run during the pass"
    assert summary["kept"].get("activity-during-pass") == 1
    assert summary["culled"] == {"idle": 1}
    assert m_agones.game_server("gs-1")["status"]["state"] == "Allocated"
    assert r.hget(f"{P}map:g-1", "gs") == "gs-1" and not r.hexists(f"{P}map:g-1", "culling")
    assert m_agones.game_server("gs-3") is None


def test_max_session_age_is_enforced_even_when_active(culler, clean, m_iap, m_agones,
                                                      m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-old", allocated_ago=8000, active_ago=5)
    seed(r, m_agones, "g-2", "gs-young", allocated_ago=7000, active_ago=5)
    summary = run_pass(culler, m_iap)
    assert summary["culled"] == {"max-age": 1}
    assert m_agones.game_server("gs-old") is None and m_agones.game_server("gs-young")
    assert usage_entries(r)[0]["reason"] == "max-age"


def test_orphans_are_shut_down_after_the_grace_period(culler, clean, m_iap, m_agones,
                                                      m_redis_client):
    now = time.time()
    m_agones.add_game_server("gs-orphan", state="Allocated", labels={"sdfleet.dev/identity": "g-7"},
                             annotations={"sdfleet.dev/allocated-at": repr(now - 1000)})
    m_agones.add_game_server("gs-fresh", state="Allocated", labels={"sdfleet.dev/identity": "g-8"},
                             annotations={"sdfleet.dev/allocated-at": repr(now - 10)})
    m_agones.add_game_server("gs-unlabelled-old", state="Allocated", created_at=now - 5000)
    m_agones.add_ready("gs-ready")
    m_agones.add_game_server("gs-other-fleet", state="Allocated", fleet="not-ours",
                             created_at=now - 5000)
    summary = run_pass(culler, m_iap)
    assert summary["orphansShutDown"] == 2
    assert m_agones.game_server("gs-orphan") is None
    assert m_agones.game_server("gs-unlabelled-old") is None
    assert m_agones.game_server("gs-fresh") and m_agones.game_server("gs-ready")
    assert m_agones.game_server("gs-other-fleet")
    reasons = sorted(u["reason"] for u in usage_entries(m_redis_client))
    assert reasons == ["orphan", "orphan"]


def test_mapping_pointing_elsewhere_makes_the_labelled_server_an_orphan(
        culler, clean, m_iap, m_agones, m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-current", allocated_ago=60, active_ago=5)
    m_agones.add_game_server("gs-leaked", state="Allocated", labels={"sdfleet.dev/identity": "g-1"},
                             annotations={"sdfleet.dev/allocated-at": repr(time.time() - 900)})
    summary = run_pass(culler, m_iap)
    assert summary["orphansShutDown"] == 1
    assert m_agones.game_server("gs-leaked") is None
    assert m_agones.game_server("gs-current") and r.hget(f"{P}map:g-1", "gs") == "gs-current"


def test_a_corrupt_record_is_skipped_and_the_pass_goes_on(culler, clean, m_iap, m_agones,
                                                          m_redis_client):
    r = m_redis_client
    old = time.time() - 5000
    r.hset(f"{P}map:g-bad1", mapping={"gs": "gs-x", "allocated_at": "yesterday"})
    r.zadd(f"{P}activity", {"g-bad1": old})
    r.set(f"{P}map:g-bad2", "not a hash")
    r.zadd(f"{P}activity", {"g-bad2": old})
    seed(r, m_agones, "g-3", "gs-3", allocated_ago=3000, active_ago=1000)
    summary = run_pass(culler, m_iap)
    assert summary["skipped"] == 2
    assert summary["culled"] == {"idle": 1} and m_agones.game_server("gs-3") is None
    assert r.exists(f"{P}map:g-bad1") and r.get(f"{P}map:g-bad2") == "not a hash"
    skipped = [json.loads(l) for l in culler.log().splitlines()
               if l.startswith("{") and "skipped a record" in l]
    assert {s["id"] for s in skipped} >= {"g-bad1", "g-bad2"}


def test_failed_deletion_never_drops_the_mapping(culler, clean, m_iap, m_agones, m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    m_agones.fail_next(500, count=20, method="DELETE")
    summary = run_pass(culler, m_iap)
    assert summary["deleteFailures"] == 1 and summary["culled"] == {}
    assert m_agones.game_server("gs-1")
    assert r.hget(f"{P}map:g-1", "gs") == "gs-1" and not r.hexists(f"{P}map:g-1", "culling")
    assert r.zscore(f"{P}activity", "g-1") is not None and usage_entries(r) == []
    m_agones.reset()
    m_agones.add_game_server("gs-1", state="Allocated", labels={"sdfleet.dev/identity": "g-1"})
    assert run_pass(culler, m_iap)["culled"] == {"idle": 1}
    assert not r.exists(f"{P}map:g-1")


def test_stale_mappings_are_reconciled(culler, clean, m_iap, m_agones, m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-gone", allocated_ago=100, active_ago=5)
    seed(r, m_agones, "g-2", "gs-sick", allocated_ago=100, active_ago=5)
    seed(r, m_agones, "g-3", "gs-fine", allocated_ago=100, active_ago=5)
    seed(r, m_agones, "g-4", "gs-reused", allocated_ago=100, active_ago=5)
    m_agones.remove("gs-gone")
    m_agones.make_unhealthy("gs-sick")
    m_agones.set_state("gs-reused", "Ready")
    r.zadd(f"{P}activity", {"g-9": time.time() - 9000})   # an index entry without mapping
    summary = run_pass(culler, m_iap)
    assert summary["ended"] == {"game-server-gone": 1, "game-server-not-allocated": 1}
    assert summary["culled"] == {"game-server-unhealthy": 1}
    assert summary["indexDropped"] == 1
    assert not r.exists(f"{P}map:g-1") and not r.exists(f"{P}map:g-2")
    assert not r.exists(f"{P}map:g-4") and m_agones.game_server("gs-reused")
    assert m_agones.game_server("gs-sick") is None
    assert r.exists(f"{P}map:g-3") and m_agones.game_server("gs-fine")
    assert r.zscore(f"{P}activity", "g-9") is None
    assert len(usage_entries(r)) == 3


def test_culler_requires_the_schedulers_token(culler, clean, m_iap, m_agones, m_redis_client):
    seed(m_redis_client, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    url = culler.url + "/cull"
    assert call("POST", url)[0] == 401
    assert call("POST", url, {"Authorization": "Bearer nonsense"})[0] == 401
    assert call("POST", url, {"Authorization": "Bearer " + invoker_token(
        m_iap, audience="https://elsewhere/cull")})[0] == 401
    assert call("POST", url, {"Authorization": "Bearer " + m_iap.mint_unsigned(
        aud=CULLER_AUDIENCE, iss="https://accounts.google.com", email=CULLER_SA)})[0] == 401
    assert call("POST", url, {"Authorization": "Bearer " + invoker_token(
        m_iap, email="someone@example.com")})[0] == 403
    assert call("GET", url, {"Authorization": "Bearer " + invoker_token(m_iap)})[0] == 405
    assert m_agones.game_server("gs-1") and m_redis_client.exists(f"{P}map:g-1")
    assert m_agones.calls.total() == 0


def test_kubernetes_list_failure_is_reported_and_idle_culling_still_happens(
        culler, clean, m_iap, m_agones, m_redis_client):
    seed(m_redis_client, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    m_agones.fail_next(503, count=8, method="GET")
    summary = run_pass(culler, m_iap)
    assert summary["reconcileErrors"]
    assert summary["culled"] == {"idle": 1}


def test_an_allocation_under_way_keeps_the_session_and_culls_release_their_locks(
        culler, clean, m_iap, m_agones, m_redis_client):
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    seed(r, m_agones, "g-2", "gs-2", allocated_ago=3000, active_ago=1000)
    r.set(f"{P}lock:g-1", "allocator-token", px=20000)
    summary = run_pass(culler, m_iap)
    assert summary["kept"].get("allocation-in-progress") == 1
    assert summary["culled"] == {"idle": 1}
    assert m_agones.game_server("gs-1") and r.get(f"{P}lock:g-1") == "allocator-token"
    assert m_agones.game_server("gs-2") is None and not r.exists(f"{P}lock:g-2")


def test_allocator_waits_for_a_cull_in_progress_then_allocates_fresh(
        culler, allocator, clean, m_iap, m_agones, m_redis_client):
    """The person returns while the culler holds their identity lock: no second game
    server is allocated until the cull has finished."""
    r = m_redis_client
    id_ = "g-100000000000000000001"
    seed(r, m_agones, id_, "gs-old", allocated_ago=3000, active_ago=1000)
    m_agones.add_ready("gs-new", port=7300)
    r.set(f"{P}lock:{id_}", "culler-token", px=1500)      # as the culler's claim takes it
    r.hset(f"{P}map:{id_}", "culling", repr(time.time()))
    t0 = time.monotonic()
    status, body, _ = call("POST", allocator.url + "/allocate",
                           {"x-goog-iap-jwt-assertion": m_iap.mint()})
    assert status == 200 and body["status"] == "ready" and body["gameServer"] == "gs-new"
    assert time.monotonic() - t0 >= 1.0                   # it waited for the lock
    assert not r.exists(f"{P}lock:{id_}")


# ---- the pod's own activity report (docs/contracts.md "Activity") --------
# The trusted front in the WebUI pod counts traffic, long WebSocket/SSE connections
# included, and reports it with the Agones SDK: SetAnnotation("last-activity", "<unix s>"),
# which Agones stores as `agones.dev/sdk-last-activity` on the GameServer.

LAST_ACTIVITY = "agones.dev/sdk-last-activity"


def report(agones, gs, seconds_ago=None, raw=None):
    value = raw if raw is not None else str(int(time.time() - seconds_ago))
    status, _, _ = agones.handle(
        "PATCH", f"/apis/agones.dev/v1/namespaces/{agones.namespace}/gameservers/{gs}",
        json.dumps({"metadata": {"annotations": {LAST_ACTIVITY: value}}}).encode())
    assert status == 200


def test_a_long_generation_reported_by_the_pod_is_not_culled(culler, clean, m_iap, m_agones,
                                                              m_redis_client):
    """Redis saw nothing for 1000 s (one WebSocket carries an hour-long job), but the pod
    reported traffic 30 s ago: kept. Before, the culler read Redis only and culled it."""
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-working", allocated_ago=3000, active_ago=1000)
    seed(r, m_agones, "g-2", "gs-idle", allocated_ago=3000, active_ago=1000)
    report(m_agones, "gs-working", seconds_ago=30)
    report(m_agones, "gs-idle", seconds_ago=2000)            # the pod's report is old too
    summary = run_pass(culler, m_iap)
    assert summary["culled"] == {"idle": 1}
    assert summary["kept"].get("active") == 1
    assert m_agones.game_server("gs-working")["status"]["state"] == "Allocated"
    assert r.hget(f"{P}map:g-1", "gs") == "gs-working"
    assert m_agones.game_server("gs-idle") is None


def test_the_later_of_the_two_records_counts(culler, clean, m_iap, m_agones, m_redis_client):
    """Redis recent, pod report old: kept (the router saw traffic the pod did not report)."""
    r = m_redis_client
    seed(r, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=20)
    report(m_agones, "gs-1", seconds_ago=5000)
    assert run_pass(culler, m_iap)["culled"] == {}
    assert m_agones.game_server("gs-1")


@pytest.mark.parametrize("value", ["yesterday", "", "nan", "\u00ff"])
def test_an_unreadable_report_is_ignored(culler, clean, m_iap, m_agones, m_redis_client, value):
    seed(m_redis_client, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    report(m_agones, "gs-1", raw=value)
    assert run_pass(culler, m_iap)["culled"] == {"idle": 1}


def test_a_report_that_cannot_be_read_keeps_the_session_this_pass(
        culler, clean, m_iap, m_agones, m_redis_client):
    """Idle by Redis, but every read of the game servers fails (the slice lookup, the fleet
    page and the pod-activity list, 4 attempts each): not culled blind."""
    seed(m_redis_client, m_agones, "g-1", "gs-1", allocated_ago=3000, active_ago=1000)
    m_agones.fail_next(503, count=12, method="GET")
    summary = run_pass(culler, m_iap)
    assert summary["kept"].get("pod-activity-unknown") == 1, summary
    assert any(e.startswith("pod activity:") for e in summary["reconcileErrors"])
    assert summary["culled"] == {} and m_agones.game_server("gs-1")
    assert run_pass(culler, m_iap)["culled"] == {"idle": 1}      # next pass, API back


def test_after_a_flush_the_culler_rebuilds_sessions_from_the_cluster(
        culler, clean, m_iap, m_agones, m_redis_client):
    """Redis lost everything (a Basic instance's maintenance): the cluster is the truth. A
    labelled game server whose pod reported activity gets its mapping back; one idle by its
    report is culled as any idle session is; one that never reported is an orphan after the
    grace; one whose identity is mapped to another game server is a leaked duplicate."""
    r, now = m_redis_client, time.time()

    def labelled(name, identity, allocated_ago, reported_ago=None, port=7000):
        annotations = {"sdfleet.dev/allocated-at": repr(now - allocated_ago),
                       "sdfleet.dev/email": f"{identity}@example.com"}
        if reported_ago is not None:
            annotations["agones.dev/sdk-last-activity"] = repr(now - reported_ago)
        m_agones.add_game_server(name, state="Allocated", port=port,
                                 labels={"sdfleet.dev/identity": identity}, annotations=annotations)

    labelled("gs-working", "g-11", allocated_ago=1800, reported_ago=20, port=7011)
    labelled("gs-idle", "g-12", allocated_ago=1800, reported_ago=900)
    labelled("gs-silent", "g-13", allocated_ago=1800)
    seed(r, m_agones, "g-14", "gs-current", allocated_ago=60, active_ago=5)
    labelled("gs-duplicate", "g-14", allocated_ago=1800, reported_ago=20)
    r.delete(f"{P}reconcile")  # the flush took the cursor too (seed wrote none)
    summary = run_pass(culler, m_iap)
    assert summary["restored"] == 1 and summary.get("fullReconcile") is True
    mapping = r.hgetall(f"{P}map:g-11")
    assert mapping["gs"] == "gs-working" and mapping["target"] == "127.0.0.1:7011"
    assert mapping["sub"] == "accounts.google.com:11" and mapping["email"] == "g-11@example.com"
    assert abs(float(mapping["allocated_at"]) - (now - 1800)) < 1
    assert abs(r.zscore(f"{P}activity", "g-11") - (now - 20)) < 1
    assert m_agones.game_server("gs-working")
    assert m_agones.game_server("gs-idle") is None
    assert m_agones.game_server("gs-silent") is None
    assert m_agones.game_server("gs-duplicate") is None and m_agones.game_server("gs-current")
    reasons = sorted(u["reason"] for u in usage_entries(r))
    assert reasons == ["idle", "orphan", "orphan"]
    # the next pass treats the rebuilt session as any other
    again = run_pass(culler, m_iap)
    assert again["restored"] == 0 and m_agones.game_server("gs-working")
    assert r.hget(f"{P}map:g-11", "gs") == "gs-working"


def test_a_flush_is_read_in_full_in_one_pass_past_the_page_size(
        culler_small_pages, clean, m_iap, m_agones, m_redis_client):
    now = time.time()
    for i in range(25):  # five pages of five
        m_agones.add_game_server(f"gs-{i:02d}", state="Allocated", port=7100 + i,
                                 labels={"sdfleet.dev/identity": f"g-{100 + i}"},
                                 annotations={"sdfleet.dev/allocated-at": repr(now - 600),
                                              "agones.dev/sdk-last-activity": repr(now - 10)})
    summary = run_pass(culler_small_pages, m_iap)
    assert summary["restored"] == 25
    assert all(m_redis_client.hget(f"{P}map:g-{100 + i}", "gs") == f"gs-{i:02d}" for i in range(25))
    # with the cursor back, passes are incremental again: one page each
    assert m_redis_client.exists(f"{P}reconcile")
    assert "fullReconcile" not in run_pass(culler_small_pages, m_iap)


def test_usage_is_gpu_seconds_per_person_per_month(m_redis, m_iap, m_agones, m_redis_client,
                                                  clean):
    """A pod on a node of 2 GPUs shared by 4 pods holds half a GPU: its hour is 1,800
    GPU-seconds; sessions of one person add up in their month, orphans included."""
    from tests.functions.conftest import base_env, start_function
    culler = start_function("culler", "cull", base_env(m_redis, m_iap, m_agones, GPUS_PER_POD=0.5))
    try:
        r = m_redis_client
        seed(r, m_agones, "g-5", "gs-a", allocated_ago=3600, active_ago=3000)
        run_pass(culler, m_iap)
        now = time.time()
        m_agones.add_game_server("gs-orphan", state="Allocated", labels={"sdfleet.dev/identity": "g-5"},
                                 annotations={"sdfleet.dev/allocated-at": repr(now - 1200)})
        run_pass(culler, m_iap)
        month = time.strftime("%Y-%m", time.gmtime())
        assert float(r.hget(f"{P}usage:{month}", "g-5")) == pytest.approx(1800 + 600, abs=10)
        records = {u["gs"]: u for u in usage_entries(r)}
        assert float(records["gs-a"]["gpu_seconds"]) == pytest.approx(1800, abs=5)
        assert float(records["gs-orphan"]["gpu_seconds"]) == pytest.approx(600, abs=5)
    finally:
        culler.stop()
