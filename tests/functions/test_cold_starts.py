"""Every deploy measures its own cold starts: the culler records each young game server's
cold start once (the pod's own steps on its game server, the scheduler's and kubelet's events
for what only the cluster sees), per profile, and keeps p50/p95 per phase for the waiting page
and the admin view."""

from __future__ import annotations

import json
import time

import pytest
from shared.cold_starts import expected_wait, percentile, phases, steps_from, summarize

from tests.functions.test_culler import run_pass

P = "sdfleet:"
KEY = "agones.dev/sdk-sdfleet-cold-start"
T0 = 1_800_000_000.0


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _event(reason: str, at: float, field: str | None = None) -> dict:
    involved = {"kind": "Pod", "name": "gs"}
    if field:
        involved["fieldPath"] = field
    return {"reason": reason, "firstTimestamp": _stamp(at), "involvedObject": involved}


def test_steps_come_from_the_pod_and_its_events():
    annotation = json.dumps({"gameServerCreated": T0, "supervisorStarted": T0 + 200,
                             "webuiStarted": T0 + 201, "apiAnswered": T0 + 230, "firstImage": T0 + 240})
    events = [_event("Scheduled", T0 + 120), _event("Started", T0 + 150, "spec.containers{user-sync}"),
              _event("Started", T0 + 199, "spec.containers{webui}"), _event("Pulled", T0 + 190, "spec.containers{webui}")]
    steps = steps_from(annotation, events)
    assert steps["podScheduled"] == T0 + 120 and steps["containerStarted"] == T0 + 199
    assert phases(steps) == {"waitingForNode": 120.0, "pullingImage": 79.0, "startingWebui": 31.0,
                             "loadingModel": 10.0, "total": 240.0}


@pytest.mark.parametrize("annotation,events,expected", [
    # no events (expired or unreadable): the container started when its supervisor did
    (json.dumps({"gameServerCreated": T0, "supervisorStarted": T0 + 90, "apiAnswered": T0 + 100,
                 "firstImage": T0 + 110}), [], {"startingWebui": 10.0, "loadingModel": 10.0, "total": 110.0}),
    # clocks that disagree make no negative phase
    (json.dumps({"gameServerCreated": T0, "firstImage": T0 + 60}), [_event("Scheduled", T0 - 5)],
     {"total": 60.0}),
    # garbage is nothing, not an error
    ("not json", [{"reason": "Scheduled", "firstTimestamp": "yesterday"}], {}),
    (json.dumps({"gameServerCreated": "soon", "firstImage": float("nan")}), [], {}),
])
def test_phases_table(annotation, events, expected):
    assert phases(steps_from(annotation, events)) == expected


def test_percentiles_and_the_expected_wait():
    assert percentile([5.0], 95) == 5.0
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0 and percentile(values, 95) == 95.0
    records = [{"profile": "l4", "phases": {"total": t, "loadingModel": 5}} for t in (60, 70, 80, 90, 300)]
    summary = summarize(records + [{"profile": "a100", "phases": {"total": 100}}])
    assert summary["l4"]["total"] == {"p50": 80.0, "p95": 300.0, "n": 5}
    assert list(summary["l4"]) == ["loadingModel", "total"]
    assert expected_wait(summary, "l4") == 80.0
    assert expected_wait(summary, "a100") is None          # one start says little
    assert expected_wait(summary, "nope") is None


def _young_pod(agones, name: str, created: float, total: float) -> None:
    steps = {"gameServerCreated": created, "supervisorStarted": created + total - 40,
             "webuiStarted": created + total - 39, "apiAnswered": created + total - 10,
             "firstImage": created + total}
    agones.add_game_server(name, state="Ready", port=7100, fleet=agones.fleet,
                           annotations={KEY: json.dumps(steps)}, created_at=created)
    agones.add_pod_event(name, "Scheduled", "assigned", type_="Normal", at=created + 30,
                         source="default-scheduler")
    agones.add_pod_event(name, "Started", "Started container webui", type_="Normal",
                         at=created + total - 41, source="kubelet", field_path="spec.containers{webui}")


def test_the_culler_records_each_cold_start_once_and_keeps_the_summary(
        culler, clean, m_iap, m_agones, m_redis_client):
    r, now = m_redis_client, float(int(time.time()))   # events carry whole seconds
    for i, total in enumerate((100, 120, 140)):
        _young_pod(m_agones, f"{m_agones.fleet}-abcde-{i}", now - 600, total)
    # an old game server (its cold start long past) and one still starting are not looked at
    m_agones.add_game_server(f"{m_agones.fleet}-abcde-old", state="Allocated", fleet=m_agones.fleet,
                             annotations={KEY: json.dumps({"gameServerCreated": now - 90000})},
                             created_at=now - 90000)
    m_agones.add_game_server(f"{m_agones.fleet}-abcde-new", state="Scheduled", fleet=m_agones.fleet)

    first = run_pass(culler, m_iap)
    assert first["coldStarts"] == 3
    records = [json.loads(f.get("record") or f.get(b"record")) for _, f in r.xrange(f"{P}cold-starts")]
    assert sorted(rec["gs"] for rec in records) == [f"{m_agones.fleet}-abcde-{i}" for i in range(3)]
    one = next(rec for rec in records if rec["gs"].endswith("-0"))
    assert one["profile"] == "default"
    assert one["phases"] == {"waitingForNode": 30.0, "pullingImage": 29.0, "startingWebui": 31.0,
                             "loadingModel": 10.0, "total": 100.0}
    summary = json.loads(r.get(f"{P}cold-start-summary"))
    assert summary["default"]["total"] == {"p50": 120.0, "p95": 140.0, "n": 3}
    assert summary["default"]["waitingForNode"]["n"] == 3

    second = run_pass(culler, m_iap)
    assert "coldStarts" not in second                      # recorded once
    assert r.xlen(f"{P}cold-starts") == 3


def test_the_waiting_page_says_the_measured_wait_and_the_admin_sees_the_phases(
        allocator, clean, m_iap, m_agones, m_redis_client):
    from tests.functions.test_allocator import ALICE, post_allocate
    token = m_iap.mint(sub=ALICE)
    body = post_allocate(allocator, token)[1]
    assert body["phase"] == "waiting-for-gpu" and "few minutes" in body["message"]
    assert "expectedWaitSeconds" not in body                   # nothing measured yet
    m_redis_client.set(f"{P}cold-start-summary", json.dumps(
        {"default": {"total": {"p50": 170.0, "p95": 400.0, "n": 8}}}))
    body = post_allocate(allocator, token)[1]
    assert body["expectedWaitSeconds"] == 170
    assert "usually takes about 3 minutes to start" in body["message"]


def test_the_waiting_answer_reads_the_summary_once_a_minute_once_something_was_measured():
    """The waiting page asks every few seconds; the summary changes at most once a minute."""
    from types import SimpleNamespace

    from waiting import SUMMARY_TTL_SECONDS, WaitingPhase

    reads = []
    stored = {"value": None}

    class Client:
        def get(self, key):
            reads.append(key)
            return stored["value"]

    now = [1000.0]
    waiting = WaitingPhase(SimpleNamespace(client=Client(), prefix=P), agones=None,
                           clock=lambda: now[0])
    target = SimpleNamespace(name="default")
    assert waiting.usual_start(target) is None and waiting.usual_start(target) is None
    assert len(reads) == 2                                  # nothing measured: not kept
    stored["value"] = json.dumps({"default": {"total": {"p50": 170.0, "p95": 400.0, "n": 8}}})
    assert waiting.usual_start(target) == 170.0             # shows at once
    stored["value"] = json.dumps({"default": {"total": {"p50": 90.0, "p95": 400.0, "n": 9}}})
    now[0] += SUMMARY_TTL_SECONDS - 1
    assert waiting.usual_start(target) == 170.0 and len(reads) == 3
    now[0] += 1
    assert waiting.usual_start(target) == 90.0 and len(reads) == 4
