"""What the culler knows of one session, built from its Redis record and its game server."""

from __future__ import annotations

import dataclasses

from rules import SessionView
from shared.agones import GameServer
from shared.state import CorruptRecord, Mapping


def view_of(id_: str, fields, score) -> SessionView:
    if isinstance(fields, Exception):
        return SessionView(id=id_, corrupt=str(fields).split("\n")[0][:120])
    if not fields:
        return SessionView(id=id_, last_activity=score)
    try:
        return SessionView(id=id_, mapping=Mapping.parse(fields), last_activity=score)
    except CorruptRecord as e:
        return SessionView(id=id_, corrupt=str(e))


def seen(view: SessionView, gs: GameServer | None) -> SessionView:
    return replaced(view, game_server_seen=True, game_server=gs)


def replaced(view: SessionView, **changes) -> SessionView:
    return dataclasses.replace(view, **changes)
