"""What the user-sync sidecar may copy, where, and for whom. Pure rules, no I/O loops.

- ``valid_identity``   the label value must be the contract's label-safe id before it is
                       ever used in a path (no '/', no '..', at most 63 characters)
- ``binding_decision`` which person's folder to sync: the first valid identity seen on an
                       Allocated game server, for the pod's whole life; a later different
                       label is a conflict and stops all syncing (one person's files never
                       reach another's folder or pod)
- ``should_pull``      settings always, outputs only if recent
- ``should_push``      regular files only (never symlinks: the WebUI container, which runs
                       third-party extensions, could plant a link to someone else's folder),
                       not temporary files, not oversized, and only if new or changed
"""

from __future__ import annotations

import re
import stat as statmod
from dataclasses import dataclass
from pathlib import PurePosixPath

from .agones import IDENTITY_LABEL, labels_of, state_of

IDENTITY_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SKIPPED_SUFFIXES = (".tmp", ".part", ".lock", ".sdfleet-sync")
SKIPPED_DIRS = frozenset({"__pycache__", ".cache", "temp", "tmp"})


def valid_identity(value: object) -> str | None:
    if isinstance(value, str) and len(value) <= 63 and IDENTITY_RE.fullmatch(value):
        return value
    return None


@dataclass(frozen=True)
class Decision:
    action: str  # wait | bind | sync | final | refuse | conflict
    identity: str | None = None
    reason: str = ""


def binding_decision(bound: str | None, gameserver: dict) -> Decision:
    state = state_of(gameserver)
    label = labels_of(gameserver).get(IDENTITY_LABEL)
    if bound is not None and label is not None and label != bound:
        return Decision("conflict", bound, f"identity label changed from {bound!r} to {label!r}")
    if state == "Shutdown":
        return Decision("final", bound, "game server is shutting down")
    if bound is not None:
        return Decision("sync", bound)
    if state != "Allocated" or label is None:
        return Decision("wait", None, f"state {state or 'unknown'}, no identity yet")
    identity = valid_identity(label)
    if identity is None:
        return Decision("refuse", None, f"label {IDENTITY_LABEL}={label!r} is not a valid id; "
                                        f"expected [a-z0-9]([-a-z0-9]*[a-z0-9])? of at most 63 characters")
    return Decision("bind", identity)


def is_output(rel: PurePosixPath) -> bool:
    return "outputs" in rel.parts


def is_skipped(rel: PurePosixPath) -> bool:
    return rel.name.endswith(SKIPPED_SUFFIXES) or any(p in SKIPPED_DIRS for p in rel.parts[:-1])


def should_pull(rel: PurePosixPath, st, now: float, recent_seconds: float) -> bool:
    if not statmod.S_ISREG(st.st_mode) or is_skipped(rel):
        return False
    return not is_output(rel) or now - st.st_mtime <= recent_seconds


def should_push(rel: PurePosixPath, st, dest_st, max_bytes: int) -> bool:
    if not statmod.S_ISREG(st.st_mode) or is_skipped(rel) or st.st_size > max_bytes:
        return False
    if dest_st is None:
        return True
    return dest_st.st_size != st.st_size or int(dest_st.st_mtime) != int(st.st_mtime)
