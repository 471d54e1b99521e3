"""The profiles the allocator may hand out and the culler looks after (docs/contracts.md,
"Profiles"): from `SDFLEET_PROFILES` (JSON, written by the stack), else the one implicit
profile of a platform without profiles, whose fleet is `FLEET_NAME`."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .env import PROFILES

IMPLICIT = "default"


class ProfilesError(ValueError):
    pass


@dataclass(frozen=True)
class Profile:
    name: str
    display_name: str
    description: str
    framework: str            # what people call the framework
    gpu: str                  # what people call the GPU, e.g. "L4"
    region: str
    fleet: str
    access: tuple[str, ...] | None   # None: everyone who may sign in
    max_sessions: int
    gpus_per_pod: float
    default: bool

    def public(self) -> dict:
        """What a person is shown about it (never who else may use it)."""
        return {"name": self.name, "displayName": self.display_name,
                "description": self.description, "framework": self.framework, "gpu": self.gpu}


def _one(raw: dict, i: int) -> Profile:
    try:
        access = raw.get("access")
        return Profile(
            name=str(raw["name"]), display_name=str(raw.get("displayName") or raw["name"]),
            description=str(raw.get("description") or ""),
            framework=str(raw.get("frameworkLabel") or raw.get("framework") or ""),
            gpu=str(raw.get("gpu") or ""), region=str(raw.get("region") or ""),
            fleet=str(raw["fleet"]),
            access=tuple(str(m) for m in access) if access is not None else None,
            max_sessions=int(raw.get("maxSessions") or 0),
            gpus_per_pod=float(raw.get("gpusPerPod") or 1.0), default=bool(raw.get("default")))
    except (KeyError, TypeError, ValueError) as e:
        raise ProfilesError(f"{PROFILES}[{i}] is malformed: {e!r}") from None


def fleet_of(game_server: str, fleets) -> str | None:
    """The fleet that named a game server (Agones: <fleet>-<set>-<id>); the longest wins."""
    return max((f for f in fleets if game_server.startswith(f + "-")), key=len, default=None)


def load_profiles(env, fleet: str | None, gpus_per_pod: float = 1.0) -> list[Profile]:
    raw = env.get(PROFILES)
    if not raw:
        if not fleet:
            raise ProfilesError(f"environment variable FLEET_NAME or {PROFILES} is required")
        return [Profile(IMPLICIT, "Stable Diffusion WebUI", "", "", "", "", fleet, None, 0,
                        gpus_per_pod, True)]
    try:
        items = json.loads(raw)
    except ValueError:
        raise ProfilesError(f"{PROFILES} is not JSON") from None
    if not isinstance(items, list) or not items:
        raise ProfilesError(f"{PROFILES} must be a non-empty JSON list")
    profiles = [_one(item if isinstance(item, dict) else {}, i) for i, item in enumerate(items)]
    if sum(p.default for p in profiles) != 1:
        raise ProfilesError(f"{PROFILES}: exactly one profile must be the default")
    return profiles
