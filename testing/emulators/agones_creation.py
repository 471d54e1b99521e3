"""Creation of Agones objects in the emulator, refused exactly when Agones's webhook would."""

from __future__ import annotations

import json
import re

from testing.emulators import agones_validation
from testing.emulators.kube_api import _copy, _status

# Creation of Agones objects, validated as Agones's webhook does (agones_validation.py).
CREATE_PATH = re.compile(
    r"^/apis/(agones\.dev|autoscaling\.agones\.dev)/v1/namespaces/([^/]+)/"
    r"(fleets|gameservers|fleetautoscalers)$")
CREATE_KINDS = {("agones.dev", "fleets"): "Fleet", ("agones.dev", "gameservers"): "GameServer",
                ("autoscaling.agones.dev", "fleetautoscalers"): "FleetAutoscaler"}


class _ValidatedCreation:
    """POST of Fleets, GameServers and FleetAutoscalers, refused (422 Invalid, the causes in
    `details.causes`) exactly when Agones's webhook would refuse them; admitted ones are kept
    in `emu.created[(kind, namespace, name)]`. Feature gates: `emu.features`, set from the
    chart's `featureGates` string with `emu.set_feature_gates("A=true&B=false")`."""

    def set_feature_gates(self, gates: str) -> None:
        self.features = agones_validation.features_from_gates(gates)

    def _create_validated(self, group: str, namespace: str, plural: str, body: bytes):
        kind = CREATE_KINDS[(group, plural)]
        self.calls[("POST", kind)] += 1
        try:
            obj = json.loads(body or b"{}")
        except ValueError:
            return 400, _status(400, "BadRequest", "body is not JSON"), {}
        if obj.get("kind") != kind:
            return 400, _status(400, "BadRequest", f"kind {obj.get('kind')!r} on {plural}"), {}
        features = getattr(self, "features", None) or agones_validation.DEFAULT_FEATURES
        problems = agones_validation.validate(obj, features)
        name = (obj.get("metadata") or {}).get("name", "")
        if problems:
            status = _status(422, "Invalid", f"{kind}.{group} {name!r} is invalid: "
                             + "; ".join(problems))
            status["details"] = {"name": name, "group": group, "kind": kind,
                                 "causes": [{"field": p.split(":", 1)[0],
                                             "message": p.split(":", 1)[1].strip()}
                                            for p in problems]}
            return 422, status, {}
        with self._lock:
            created = getattr(self, "created", None)
            if created is None:
                created = self.created = {}
            if (kind, namespace, name) in created:
                return 409, _status(409, "AlreadyExists", f"{plural} {name!r} already exists"), {}
            stored = _copy(obj)
            stored.setdefault("metadata", {}).update(namespace=namespace, uid=self._next_uid())
            created[(kind, namespace, name)] = stored
        return 201, _copy(stored), {}
