"""The allocator's three answers (docs/contracts.md, the allocator's reply): ready, pending, refused."""

from __future__ import annotations

from allocator_rules import Admission
from shared.profiles import Profile
from shared.state import Mapping
from shared.verifier import Identity


def ready(who: Identity, mapping: Mapping, profile: Profile | None = None) -> dict:
    answer = {"status": "ready", "id": who.id, "gameServer": mapping.gs,
              "target": mapping.target, "allocatedAt": mapping.allocated_at}
    if profile is not None:
        answer["profile"] = profile.name
    return answer


def pending(who: Identity, phase: str, message: str, retry_after: int = 3, **extra) -> dict:
    return {"status": "pending", "id": who.id, "phase": phase, "message": message,
            "retryAfterSeconds": retry_after, **extra}


def refused(who: Identity, admission: Admission, profiles: list[dict]) -> dict:
    return {"status": "refused", "id": who.id, "reason": admission.reason,
            "message": admission.message, "profiles": profiles}
