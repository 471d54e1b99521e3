"""GKE custom compute classes: a GPU pool's Spot node pool first, its on-demand pool after.

A pool with `onDemandFallback` has two node pools, both labelled and tainted with the class
(GKE docs, "About custom compute classes": node pools made by hand join a class by the label
`cloud.google.com/compute-class=<name>` and the taint of the same key and value). The class
lists them in order: the cluster autoscaler scales the Spot pool up, and only when it cannot
(no Spot capacity in any of the pool's zones) the on-demand one. Node pool auto-creation is off
(the stack owns every pool), and nothing moves running pods back to Spot: a migration would end
a person's session.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.gcp.node_pools import GpuNodePool
from components.k8s.objects import KubeObject, meta

COMPUTE_CLASS_API = "cloud.google.com/v1"


def compute_class_spec(pool_names: list[str]) -> dict:
    """The class's spec: the node pools in the order the autoscaler tries them."""
    return {"priorities": [{"nodepools": [name]} for name in pool_names],
            "nodePoolAutoCreation": {"enabled": False},
            # Never start a VM the class does not list (e.g. an unlisted default pool).
            "whenUnsatisfiable": "DoNotScaleUp"}


@dataclass(frozen=True)
class CapacityClassesArgs:
    pools: list[GpuNodePool]


class CapacityClasses(pulumi.ComponentResource):
    """`sdfleet:gcp:CapacityClasses`: one compute class per GPU pool with an on-demand fallback."""

    def __init__(self, name: str, args: CapacityClassesArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:CapacityClasses", name, None, opts)
        self.classes: dict[str, KubeObject] = {}
        for pool in args.pools:
            if pool.compute_class is None:
                continue
            self.classes[pool.compute_class] = KubeObject(
                f"{name}-{pool.config.name}", COMPUTE_CLASS_API, "ComputeClass",
                metadata=meta(pool.compute_class),
                spec=compute_class_spec([pool.pool_name, pool.fallback_pool_name]),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[pool.node_pool,
                                                                     pool.fallback_pool]))
        self.register_outputs({"classes": list(self.classes)})
