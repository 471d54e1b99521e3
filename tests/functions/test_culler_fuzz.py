"""One bad record never stops the culler.

A fuzzed Redis (hypothesis, pinned in tests/requirements.txt, derandomized): next to good
sessions, some idle and some active, each example plants bad records: keys of the wrong
type (the reconcile cursor, a mapping, a lock, the usage stream), members and fields of
binary garbage that is not UTF-8, mappings with missing or malformed fields. Every pass
must still cull exactly the good idle sessions and keep the good active ones; the bad
records are skipped and logged. Before the fix a wrong-typed cursor failed every pass
(WRONGTYPE) and one non-UTF-8 member failed the whole candidate read.

In-process: the real CullPass on a client made by `shared.redis_client.connect` (as the function
makes it) against a real redis-server and the Agones emulator.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from cull_pass import CullPass
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shared.agones import AgonesClient
from shared.config import CullerSettings, KubernetesSettings, RedisSettings
from shared.redis_client import connect
from shared.state import SessionStore

from tests.functions.conftest import FLEET

P = "sdfleet:"
IDLE, ACTIVE = 3000.0, 10.0          # seconds since last activity (limit: 600)


@pytest.fixture(scope="module")
def pool():
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


@pytest.fixture(scope="module")
def store(m_redis):
    client = connect(RedisSettings(host="127.0.0.1", port=m_redis.port, tls=False,
                                   ca_file=None, password=m_redis.password,
                                   prefix=P), m_redis.password)
    yield SessionStore(client, P)
    client.close()


@pytest.fixture(scope="module")
def raw(m_redis):
    """A bytes client, to plant what a str client cannot write."""
    import redis
    client = redis.Redis(port=m_redis.port, password=m_redis.password)
    yield client
    client.close()


def _culler(store, agones, pool) -> CullPass:
    settings = CullerSettings(idle_seconds=600, max_session_seconds=7200, orphan_grace_seconds=120,
                              pass_budget_seconds=30, batch_limit=5000, reconcile_page_size=100,
                              reconcile_mappings_per_pass=20, invoker_audience="aud",
                              invoker_emails=("x@example.com",), oidc_certs_url="https://k.invalid")
    client = AgonesClient(KubernetesSettings(
        api_url=agones.url, ca_file=None, ca_data=None, token=agones.token,
        namespace=agones.namespace, fleet=FLEET, port_name="webui", timeout_seconds=5, workers=4))
    return CullPass(store, client, settings, pool)


def _seed(raw, agones, id_: str, gs: str, active_ago: float, now: float, port: int) -> None:
    allocated_at = now - 4000
    agones.add_game_server(gs, state="Allocated", port=port, labels={"sdfleet.dev/identity": id_},
                           annotations={"sdfleet.dev/allocated-at": repr(allocated_at)})
    raw.hset(f"{P}map:{id_}", mapping={"gs": gs, "target": f"127.0.0.1:{port}",
                                       "allocated_at": repr(allocated_at),
                                       "sub": f"accounts.google.com:{id_[2:]}", "email": "x@e.com"})
    raw.zadd(f"{P}activity", {id_: now - active_ago})
    raw.zadd(f"{P}sessions", {id_: allocated_at})


garbage = st.binary(min_size=1, max_size=24).filter(lambda b: not _utf8(b))


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


# Each bad record: (kind, payload). Planted with the raw bytes client.
bad_record = st.one_of(
    st.tuples(st.just("cursor-wrong-type"), st.sampled_from(["string", "list", "zset", "set"])),
    st.tuples(st.just("activity-garbage-member"), garbage),
    st.tuples(st.just("sessions-garbage-member"), garbage),
    st.tuples(st.just("map-wrong-type"), st.sampled_from(["string", "list", "zset"])),
    st.tuples(st.just("map-missing-field"), st.sampled_from(["gs", "target", "allocated_at"])),
    st.tuples(st.just("map-garbage-field"), st.sampled_from(["gs", "target", "allocated_at"])),
    st.tuples(st.just("map-nan-time"), st.sampled_from([b"nan", b"inf", b"-inf", b"1e999"])),
    st.tuples(st.just("lock-wrong-type"), st.sampled_from(["list", "hash"])),
    st.tuples(st.just("usage-wrong-type"), st.sampled_from(["string", "hash"])),
    st.tuples(st.just("garbage-map-key"), garbage),
)


def _plant(raw, kind: str, payload, n: int, now: float) -> None:
    bad_id = f"g-9{n:05d}"
    key = {"cursor-wrong-type": f"{P}reconcile", "usage-wrong-type": f"{P}usage",
           "map-wrong-type": f"{P}map:{bad_id}", "lock-wrong-type": f"{P}lock:{bad_id}"}.get(kind)
    if kind in ("cursor-wrong-type", "map-wrong-type", "lock-wrong-type", "usage-wrong-type"):
        raw.delete(key)
        {"string": lambda: raw.set(key, b"\xff\xfe oops"),
         "list": lambda: raw.rpush(key, b"a", b"\xff"),
         "zset": lambda: raw.zadd(key, {b"\xff": 1}),
         "set": lambda: raw.sadd(key, b"x"),
         "hash": lambda: raw.hset(key, b"\xff", b"\xfe")}[payload]()
        if kind != "usage-wrong-type" and kind != "cursor-wrong-type":
            raw.zadd(f"{P}activity", {bad_id: now - IDLE})
            raw.zadd(f"{P}sessions", {bad_id: now - 4000})
        return
    if kind == "activity-garbage-member":
        raw.zadd(f"{P}activity", {b"g-" + payload: now - IDLE})
        raw.zadd(f"{P}activity", {payload: now - IDLE})
    elif kind == "sessions-garbage-member":
        raw.zadd(f"{P}sessions", {payload: now - 9000})
    elif kind == "garbage-map-key":
        raw.hset(f"{P}map:".encode() + payload, mapping={b"gs": payload, b"target": b"1.2.3.4:5"})
        raw.zadd(f"{P}activity", {payload: now - IDLE})
    else:
        fields = {b"gs": f"gs-bad-{n}".encode(), b"target": b"127.0.0.1:7999",
                  b"allocated_at": repr(now - 4000).encode()}
        if kind == "map-missing-field":
            del fields[payload.encode()]
        elif kind == "map-garbage-field":
            fields[payload.encode()] = b"\xff\xfe\x80" + bad_id.encode()
        elif kind == "map-nan-time":
            fields[b"allocated_at"] = payload
        raw.hset(f"{P}map:{bad_id}", mapping=fields)
        raw.zadd(f"{P}activity", {bad_id: now - IDLE})
        raw.zadd(f"{P}sessions", {bad_id: now - 4000})


@settings(max_examples=40, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(bad=st.lists(bad_record, min_size=1, max_size=6),
       activity=st.lists(st.booleans(), min_size=2, max_size=6))
def test_every_pass_culls_what_it_should_despite_bad_records(store, raw, m_agones, pool,
                                                             m_redis_client, bad, activity):
    m_redis_client.flushall()
    m_agones.reset()
    now = time.time()
    good = {}
    for i, idle in enumerate(activity):
        id_, gs = f"g-{1000 + i}", f"gs-good-{i}"
        _seed(raw, m_agones, id_, gs, IDLE if idle else ACTIVE, now, 7000 + i)
        good[id_] = (gs, idle)
    for n, (kind, payload) in enumerate(bad):
        _plant(raw, kind, payload, n, now)

    for attempt in range(2):            # the second pass must run too (cursor reset etc.)
        summary = _culler(store, m_agones, pool).run()
        assert summary["deleteFailures"] == 0, summary
    for id_, (gs, idle) in good.items():
        if idle:
            assert m_agones.game_server(gs) is None, (id_, bad)
            assert not raw.exists(f"{P}map:{id_}")
        else:
            assert m_agones.game_server(gs)["status"]["state"] == "Allocated"
            assert raw.hget(f"{P}map:{id_}", "gs") == gs.encode()


def test_wrong_type_cursor_is_logged_and_reset(store, raw, m_agones, pool, m_redis_client, capsys):
    m_redis_client.flushall()
    m_agones.reset()
    now = time.time()
    _seed(raw, m_agones, "g-1", "gs-1", IDLE, now, 7001)
    raw.set(f"{P}reconcile", b"not a hash")
    summary = _culler(store, m_agones, pool).run()
    assert summary["culled"] == {"idle": 1}
    assert any(e.startswith("reconcile:") for e in summary["storeErrors"]), summary
    assert raw.type(f"{P}reconcile") == b"hash"                 # reset for the next pass
    assert "culler skipped a bad key" in capsys.readouterr().out
    assert _culler(store, m_agones, pool).run()["storeErrors"] == []


def test_a_non_utf8_member_is_skipped_and_logged(store, raw, m_agones, pool, m_redis_client, capsys):
    m_redis_client.flushall()
    m_agones.reset()
    now = time.time()
    _seed(raw, m_agones, "g-1", "gs-1", IDLE, now, 7001)
    raw.zadd(f"{P}activity", {b"g-\xff\xfe": now - IDLE})
    summary = _culler(store, m_agones, pool).run()
    assert summary["culled"] == {"idle": 1} and summary["skipped"] == 1
    out = capsys.readouterr().out
    assert "culler skipped a record" in out and "not an identity id" in out
    # still there, untouched: skipping is not deleting
    assert raw.zscore(f"{P}activity", b"g-\xff\xfe") is not None


def test_activity_of_the_wrong_type_still_lets_max_age_and_reconcile_work(
        store, raw, m_agones, pool, m_redis_client):
    m_redis_client.flushall()
    m_agones.reset()
    now = time.time()
    allocated_at = now - 8000                                    # past the 7200 s maximum
    m_agones.add_game_server("gs-old", state="Allocated", labels={"sdfleet.dev/identity": "g-1"},
                             annotations={"sdfleet.dev/allocated-at": repr(allocated_at)})
    raw.hset(f"{P}map:g-1", mapping={"gs": "gs-old", "target": "127.0.0.1:7001",
                                     "allocated_at": repr(allocated_at)})
    raw.zadd(f"{P}sessions", {"g-1": allocated_at})
    raw.set(f"{P}activity", b"oops")
    summary = _culler(store, m_agones, pool).run()
    assert summary["culled"] == {"max-age": 1}, summary
    assert any(e.startswith("activity:") for e in summary["storeErrors"])
    assert m_agones.game_server("gs-old") is None and not raw.exists(f"{P}map:g-1")
