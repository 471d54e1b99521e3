"""The culler's decision rule, in-process (every branch of rules.decide)."""

from __future__ import annotations

import pytest

from tests.functions import conftest  # noqa: F401  (puts functions/ on sys.path)
from rules import Action, Limits, SessionView, decide
from shared.agones import GameServer
from shared.state import Mapping

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
