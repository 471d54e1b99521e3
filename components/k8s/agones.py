"""Agones, from its pinned Helm chart, with nothing reachable from outside the cluster.

The chart's defaults expose the allocator and the ping service as LoadBalancers; here the
allocator is a ClusterIP service with mTLS kept on (our allocator function talks to the
Kubernetes API instead), the ping service is not installed, and the controllers run on the
system pool. Game servers live only in the fleet namespace.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_kubernetes.helm import v3 as helm

from components.config.versions import AGONES_CHART_VERSION
from components.k8s.pods import NodePlacement

AGONES_REPOSITORY = "https://agones.dev/chart/stable"
AGONES_NAMESPACE = "agones-system"


def agones_values(fleet_namespace: str, scheduled_autoscaler: bool,
                  system: NodePlacement) -> dict:
    """Chart values; `system` is where the controllers run (the cloud layer's system nodes)."""
    system = {"nodeSelector": dict(system.node_selector)}
    gates = ["PortPolicyNone=true"]
    if scheduled_autoscaler:
        gates.append("ScheduledAutoscaler=true")
    return {
        "agones": {
            "featureGates": "&".join(gates),
            "controller": system,
            "extensions": system,
            "allocator": {**system, "service": {"serviceType": "ClusterIP",
                                                "http": {"enabled": True},
                                                "grpc": {"enabled": True}},
                          "disableMTLS": False, "disableTLS": False},
            "ping": {"install": False},
            "crds": {"cleanupOnDelete": False},  # never delete people's game servers on uninstall
        },
        "gameservers": {"namespaces": [fleet_namespace]},
    }


@dataclass(frozen=True)
class AgonesArgs:
    fleet_namespace: str
    # Peak hours need the ScheduledAutoscaler feature gate.
    scheduled_autoscaler: bool
    system: NodePlacement


class Agones(pulumi.ComponentResource):
    """`sdfleet:k8s:Agones`."""

    def __init__(self, name: str, args: AgonesArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:Agones", name, None, opts)
        self.release = helm.Release(
            f"{name}", name="agones", chart="agones", version=AGONES_CHART_VERSION,
            repository_opts=helm.RepositoryOptsArgs(repo=AGONES_REPOSITORY),
            namespace=AGONES_NAMESPACE, create_namespace=True, atomic=True, timeout=900,
            values=agones_values(args.fleet_namespace, args.scheduled_autoscaler, args.system),
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"status": self.release.status})
