"""The GPU node budget: all GPU capacity sources together stay within limits.maxGpuNodes."""

from __future__ import annotations

from typing import Any, Optional

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

from .define import MANDATORY, setting
from .gke import CLUSTER, NODE_POOL
from .gpu import (
    EKS_NODE_GROUP,
    GPU_RESOURCE,
    KARPENTER_NODE_POOL_TYPES,
    eks_group_is_gpu,
    gke_gpu_count,
    karpenter_is_gpu,
)
from .inputs import items, read

# Same default as components.config.LimitsConfig.max_gpu_nodes (tests/policy keeps them equal).
BUDGET_DEFAULT_MAX_GPU_NODES = 16
# Regional GKE node pools without node locations spread over the region's default zones (3).
GKE_DEFAULT_ZONES_PER_REGION = 3


def _zones(pool: Any, cluster: Optional[PolicyResource]) -> int:
    locations = items(read(pool, "nodeLocations"))
    if not locations and cluster is not None:
        locations = items(read(cluster.props, "nodeLocations"))
    if locations:
        return len(locations)
    location = read(pool, "location", default=read(cluster.props, "location") if cluster else None)
    # A zonal location (us-central1-a) has one zone; a region spreads over its default zones.
    if isinstance(location, str) and location.count("-") >= 2:
        return 1
    return GKE_DEFAULT_ZONES_PER_REGION


def _max_nodes(pool: Any, cluster: Optional[PolicyResource]) -> Optional[int]:
    autoscaling = read(pool, "autoscaling")
    total = read(autoscaling, "totalMaxNodeCount")
    if isinstance(total, (int, float)) and total:
        return int(total)
    per_zone = read(autoscaling, "maxNodeCount")
    if not isinstance(per_zone, (int, float)) or not per_zone:
        per_zone = read(pool, "nodeCount", default=read(pool, "initialNodeCount"))
    if isinstance(per_zone, (int, float)):
        return int(per_zone) * _zones(pool, cluster)
    return None


def _quantity(value: Any) -> Optional[int]:
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def gpu_node_capacity(resources: list[PolicyResource]) -> tuple[list[tuple[str, int]], list[str]]:
    """(what, max GPU nodes) per GPU capacity source, plus sources with no upper bound."""
    found: list[tuple[str, int]] = []
    unbounded: list[str] = []
    clusters = {r.urn: r for r in resources if r.resource_type == CLUSTER}
    for r in resources:
        if r.resource_type == NODE_POOL and gke_gpu_count(read(r.props, "nodeConfig")):
            cluster = next((clusters[d.urn] for d in r.dependencies if d.urn in clusters), None)
            n = _max_nodes(r.props, cluster)
            (found.append((f"node pool {r.name}", n)) if n is not None else unbounded.append(f"node pool {r.name}"))
        elif r.resource_type == CLUSTER:
            for pool in items(read(r.props, "nodePools")):
                if gke_gpu_count(read(pool, "nodeConfig")):
                    n = _max_nodes(pool, r)
                    label = f"cluster {r.name} node pool {read(pool, 'name')}"
                    (found.append((label, n)) if n is not None else unbounded.append(label))
            if gke_gpu_count(read(r.props, "nodeConfig")) and read(r.props, "removeDefaultNodePool") is not True:
                found.append((f"cluster {r.name} default pool", _max_nodes(r.props, r) or 0))
            # Node auto-provisioning: its GPU limit caps GPUs, hence GPU nodes.
            if read(r.props, "clusterAutoscaling", "enabled") is True:
                for limit in items(read(r.props, "clusterAutoscaling", "resourceLimits")):
                    kind = read(limit, "resourceType", default="")
                    if isinstance(kind, str) and kind.startswith("nvidia-"):
                        found.append((f"cluster {r.name} auto-provisioned {kind}",
                                      _quantity(read(limit, "maximum")) or 0))
        elif r.resource_type == EKS_NODE_GROUP and eks_group_is_gpu(r.props):
            n = _quantity(read(r.props, "scalingConfig", "maxSize"))
            (found.append((f"node group {r.name}", n)) if n is not None else unbounded.append(f"node group {r.name}"))
        elif r.resource_type in KARPENTER_NODE_POOL_TYPES and karpenter_is_gpu(r.props):
            # Every GPU node has at least one GPU, so the GPU limit bounds the node count.
            n = _quantity(read(r.props, "spec", "limits", GPU_RESOURCE))
            (found.append((f"Karpenter NodePool {r.name} (limit {GPU_RESOURCE})", n)) if n is not None
             else unbounded.append(f"Karpenter NodePool {r.name}"))
    return found, unbounded


def _validate_gpu_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cap = setting(args.get_config(), "maxGpuNodes",
                   lambda p: (p.get("limits") or {}).get("maxGpuNodes"), BUDGET_DEFAULT_MAX_GPU_NODES)
    found, unbounded = gpu_node_capacity(list(args.resources))
    for what in unbounded:
        report_violation(f"{what} has no upper bound on GPU nodes (budget: {cap})", None)
    total = sum(n for _, n in found)
    if total > cap:
        detail = ", ".join(f"{what}: {n}" for what, n in found)
        report_violation(f"up to {total} GPU nodes ({detail}) exceed limits.maxGpuNodes {cap}", None)


POLICIES = [
    StackValidationPolicy(
        name="gpu-node-budget",
        description="Total GPU nodes (GPU node pool maxima, Karpenter GPU limits) stay within "
                    "limits.maxGpuNodes.",
        validate=_validate_gpu_budget, enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(properties={
            "maxGpuNodes": {"type": "integer", "minimum": 0,
                            "description": "the cap (default: the stack's "
                                           "sdfleet:platform.limits.maxGpuNodes, else 16)"}})),
]
