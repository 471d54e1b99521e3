"""The culler's decision rule, in-process (every branch of rules.decide)."""

from __future__ import annotations

import pytest
from rules import Action, Limits, SessionView, decide
from shared.agones import GameServer
from shared.state import Mapping

from tests.functions import conftest  # noqa: F401  (puts functions/ on sys.path)

NOW = 1_764_000_000.0
LIMITS = Limits(idle_seconds=600, max_session_seconds=7200, orphan_grace_seconds=120)


def mapping(allocated_ago=100, gs="gs-1", culling=None):
    return Mapping(gs, "10.0.0.1:7860", NOW - allocated_ago, "s", "e", culling)


def server(state="Allocated", identity="g-1", allocated_ago=100, deleting=False, name="gs-1"):
    return GameServer(name, "uid", state, {"sdfleet.dev/identity": identity} if identity else {},
                      {"sdfleet.dev/allocated-at": repr(NOW - allocated_ago)}, "10.0.0.1:7860",
                      0.0, deleting)


@pytest.mark.parametrize("view,expected", [
    (SessionView("g-1", corrupt="missing field target"), (Action.SKIP, None)),
    (SessionView("g-1", last_activity=NOW - 9999), (Action.DROP_INDEX, "no-mapping")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW - 10), (Action.KEEP, "active")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW - 600), (Action.CULL, "idle")),
    (SessionView("g-1", mapping=mapping(allocated_ago=700)), (Action.CULL, "idle")),
    (SessionView("g-1", mapping=mapping(allocated_ago=7200), last_activity=NOW),
     (Action.CULL, "max-age")),
    (SessionView("g-1", mapping=mapping(culling=NOW - 5), last_activity=NOW - 9999),
     (Action.KEEP, "cull-in-progress")),
    (SessionView("g-1", mapping=mapping(culling=NOW - 500), last_activity=NOW - 9999),
     (Action.CULL, "idle")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True),
     (Action.END, "game-server-gone")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True,
                 game_server=server("Unhealthy")), (Action.CULL, "game-server-unhealthy")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True,
                 game_server=server(deleting=True)), (Action.CULL, "game-server-unhealthy")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True,
                 game_server=server("Ready")), (Action.END, "game-server-not-allocated")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True,
                 game_server=server(identity="g-2")), (Action.END, "game-server-not-allocated")),
    (SessionView("g-1", mapping=mapping(), last_activity=NOW, game_server_seen=True,
                 game_server=server()), (Action.KEEP, "active")),
    (SessionView("g-1", game_server=server(allocated_ago=120)), (Action.SHUTDOWN_ORPHAN, "orphan")),
    (SessionView("g-1", game_server=server(allocated_ago=119)),
     (Action.KEEP, "orphan-within-grace")),
    (SessionView(None, game_server=server("Ready", identity=None)), (Action.KEEP, "not-allocated")),
])
def test_decide(view, expected):
    verdict = decide(view, NOW, LIMITS)
    assert verdict.action == expected[0]
    if expected[1]:
        assert verdict.reason == expected[1]


# ---- the pod's own activity report: the later of Redis and the annotation counts ----------
LAST_ACTIVITY = "agones.dev/sdk-last-activity"


def reporting(seconds_ago=None, raw=None):
    value = raw if raw is not None else repr(NOW - seconds_ago)
    return GameServer("gs-1", "uid", "Allocated", {"sdfleet.dev/identity": "g-1"},
                      {LAST_ACTIVITY: value}, "10.0.0.1:7860", 0.0, False)


@pytest.mark.parametrize("redis_ago,pod,expected", [
    (9000, reporting(30), (Action.KEEP, "active")),          # pod busy, router saw nothing
    (30, reporting(9000), (Action.KEEP, "active")),          # router recent, pod report old
    (9000, reporting(9000), (Action.CULL, "idle")),
    (9000, reporting(raw="soon"), (Action.CULL, "idle")),     # unreadable report: ignored
    (9000, reporting(raw="inf"), (Action.CULL, "idle")),
    (9000, reporting(-86400), (Action.KEEP, "active")),      # future: counts as now, no later
    (None, reporting(30), (Action.KEEP, "active")),
])
def test_last_activity_is_the_later_of_redis_and_the_pod_report(redis_ago, pod, expected):
    view = SessionView("g-1", mapping=mapping(allocated_ago=7000),
                       last_activity=None if redis_ago is None else NOW - redis_ago,
                       game_server_seen=True, game_server=pod)
    verdict = decide(view, NOW, LIMITS)
    assert (verdict.action, verdict.reason) == expected


def test_a_future_report_never_outlives_the_maximum_session_age():
    view = SessionView("g-1", mapping=mapping(allocated_ago=7300), last_activity=NOW - 9000,
                       game_server_seen=True, game_server=reporting(-10 ** 9))
    assert decide(view, NOW, LIMITS).reason == "max-age"


def test_idle_by_redis_with_the_pod_report_unreadable_is_kept_this_pass():
    view = SessionView("g-1", mapping=mapping(allocated_ago=7000), last_activity=NOW - 9000,
                       pod_activity_unknown=True)
    assert (decide(view, NOW, LIMITS).action, decide(view, NOW, LIMITS).reason) == \
        (Action.KEEP, "pod-activity-unknown")


def test_the_annotation_name_is_agones_sdk_prefix_plus_our_key():
    # Agones pkg/sdkserver/sdk.go: metadataPrefix = "agones.dev/sdk-"; SetAnnotation(key)
    # stores Annotations[metadataPrefix + key]. The front calls SetAnnotation("last-activity").
    from shared.agones import LAST_ACTIVITY_ANNOTATION
    assert LAST_ACTIVITY_ANNOTATION == "agones.dev/sdk-" + "last-activity"


def reported(gs: GameServer, ago) -> GameServer:
    """The pod's front reported activity `ago` seconds ago (or a raw annotation value)."""
    value = ago if isinstance(ago, str) else repr(NOW - ago)
    return GameServer(gs.name, gs.uid, gs.state, gs.labels,
                      {**gs.annotations, "agones.dev/sdk-last-activity": value}, gs.target,
                      gs.created_at, gs.deleting)


@pytest.mark.parametrize("view,expected", [
    # Redis lost the mapping of a person who is there: it is written back, not shut down
    (SessionView("g-1", game_server=reported(server(allocated_ago=900), 5)),
     (Action.RESTORE, "mapping-rebuilt")),
    (SessionView("g-1", game_server=reported(server(allocated_ago=30), 5)),
     (Action.RESTORE, "mapping-rebuilt")),
    # ... and the ordinary rules apply to it, on the pod's own report
    (SessionView("g-1", game_server=reported(server(allocated_ago=900), 600)),
     (Action.SHUTDOWN_ORPHAN, "idle")),
    (SessionView("g-1", game_server=reported(server(allocated_ago=7200), 1)),
     (Action.SHUTDOWN_ORPHAN, "max-age")),
    # no report: within the grace it waits, after it it is an orphan
    (SessionView("g-1", game_server=server(allocated_ago=900)), (Action.SHUTDOWN_ORPHAN, "orphan")),
    (SessionView("g-1", game_server=server(allocated_ago=60)), (Action.KEEP, "orphan-within-grace")),
    # an unreadable report counts as none
    (SessionView("g-1", game_server=reported(server(allocated_ago=900), "soon")),
     (Action.SHUTDOWN_ORPHAN, "orphan")),
    # its identity is mapped to another game server: a leaked duplicate
    (SessionView("g-1", game_server=reported(server(allocated_ago=900), 5), mapped_elsewhere=True),
     (Action.SHUTDOWN_ORPHAN, "orphan")),
    (SessionView("g-1", game_server=reported(server(allocated_ago=60), 5), mapped_elsewhere=True),
     (Action.KEEP, "orphan-within-grace")),
    # no identity label, or a label that is not an identity id
    (SessionView(None, game_server=reported(server(identity=None, allocated_ago=900), 5)),
     (Action.SHUTDOWN_ORPHAN, "orphan")),
    (SessionView("x y", game_server=reported(server(identity="x y", allocated_ago=900), 5)),
     (Action.SHUTDOWN_ORPHAN, "orphan")),
    # being deleted, or not Allocated: not a session to rebuild
    (SessionView("g-1", game_server=reported(server(allocated_ago=900, deleting=True), 5)),
     (Action.KEEP, "not-allocated")),
])
def test_decide_without_a_mapping(view, expected):
    verdict = decide(view, NOW, LIMITS)
    assert (verdict.action, verdict.reason) == expected


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st


@given(labelled=st.booleans(), elsewhere=st.booleans(),
       report=st.one_of(st.none(), st.floats(-100, 20_000), st.sampled_from(["", "nan", "x"])),
       allocated_ago=st.floats(0, 20_000))
def test_without_a_mapping_only_a_live_labelled_session_is_kept_past_the_grace(
        labelled, elsewhere, report, allocated_ago):
    gs = server(identity="g-1" if labelled else None, allocated_ago=allocated_ago)
    if report is not None:
        gs = reported(gs, report)
    verdict = decide(SessionView("g-1" if labelled else None, game_server=gs,
                                 mapped_elsewhere=elsewhere), NOW, LIMITS)
    fresh = (isinstance(report, float) and max(report, 0) < LIMITS.idle_seconds)
    if verdict.action == Action.RESTORE:
        assert labelled and not elsewhere and fresh and allocated_ago < LIMITS.max_session_seconds
    elif verdict.action == Action.KEEP:
        assert allocated_ago < LIMITS.orphan_grace_seconds  # only the grace keeps one unmapped
    else:
        assert verdict.action == Action.SHUTDOWN_ORPHAN
        # a person who is there is never shut down for a lost mapping
        if labelled and not elsewhere and fresh:
            assert verdict.reason == "max-age"


def test_the_pod_is_asked_only_for_sessions_idle_by_the_routers_record():
    from rules import needs_pod_report
    assert needs_pod_report(SessionView("g-1", mapping=mapping(), last_activity=NOW - 600), NOW, LIMITS)
    assert not needs_pod_report(SessionView("g-1", mapping=mapping(), last_activity=NOW - 599), NOW, LIMITS)
    assert needs_pod_report(SessionView("g-1", mapping=mapping(allocated_ago=700)), NOW, LIMITS)
    assert not needs_pod_report(SessionView("g-1", mapping=mapping(culling=NOW), last_activity=0), NOW, LIMITS)
    assert not needs_pod_report(SessionView("g-1", mapping=mapping(), last_activity=0,
                                            game_server_seen=True, game_server=server()), NOW, LIMITS)
    assert not needs_pod_report(SessionView("g-1", last_activity=0), NOW, LIMITS)
