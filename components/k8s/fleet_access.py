"""What the allocator and culler functions may do in the fleet namespace (Roles and bindings)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.k8s.objects import KubeObject, meta


@dataclass(frozen=True)
class FleetAccessArgs:
    namespace: str
    # The functions' Google service accounts (GKE maps each to the Kubernetes user of its email).
    allocator_user: pulumi.Input[str]
    culler_user: pulumi.Input[str]


class FleetAccess(pulumi.ComponentResource):
    """`sdfleet:k8s:FleetAccess`: what the allocator and culler may do in the fleet namespace."""

    ALLOCATOR_RULES = [
        {"apiGroups": ["allocation.agones.dev"], "resources": ["gameserverallocations"],
         "verbs": ["create"]},
        # delete: a game server that lost an allocation race is handed back at once.
        {"apiGroups": ["agones.dev"], "resources": ["gameservers"],
         "verbs": ["get", "list", "delete"]},
        {"apiGroups": ["agones.dev"], "resources": ["fleets"], "verbs": ["get"]},
        # The cluster autoscaler's events on a pending game server pod say why no GPU node
        # comes (quota, stock-out, pool at its maximum): the waiting page tells the person.
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    CULLER_RULES = [
        # deletecollection: one request ends a batch of sessions (selected by identity label).
        {"apiGroups": ["agones.dev"], "resources": ["gameservers"],
         "verbs": ["get", "list", "delete", "deletecollection"]},
    ]

    def __init__(self, name: str, args: FleetAccessArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:FleetAccess", name, None, opts)
        namespace = args.namespace
        for who, user, rules in (("allocator", args.allocator_user, self.ALLOCATOR_RULES),
                                 ("culler", args.culler_user, self.CULLER_RULES)):
            role = KubeObject(f"{name}-{who}", "rbac.authorization.k8s.io/v1", "Role",
                              metadata=meta(f"sdfleet-{who}", namespace), rules=rules,
                              opts=pulumi.ResourceOptions(parent=self))
            KubeObject(f"{name}-{who}-binding", "rbac.authorization.k8s.io/v1", "RoleBinding",
                       metadata=meta(f"sdfleet-{who}", namespace),
                       roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": f"sdfleet-{who}"},
                       # GKE maps a Google service account to the user named by its email.
                       subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": user}],
                       opts=pulumi.ResourceOptions(parent=self, depends_on=[role]))
        self.register_outputs({})
