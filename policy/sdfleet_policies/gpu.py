"""GPU node pools (GKE node pools, EKS managed node groups, Karpenter NodePools): which are
GPU pools, and that they are tainted and autoscaled with an upper bound."""

from __future__ import annotations

from typing import Any, Iterable

from .define import resource_policy
from .gke import CLUSTER, NODE_POOL
from .inputs import items, mapping, read

# Accelerator-optimized GCE families come with their GPUs attached (no guestAccelerators needed).
GCE_GPU_FAMILIES = ("a2", "a3", "a4", "g2", "g4")
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
KARPENTER_NODE_POOL_TYPES = (KARPENTER_NODE_POOL, "kubernetes:karpenter.sh/v1beta1:NodePool")
GPU_RESOURCE = "nvidia.com/gpu"
GPU_POOL_TYPES = (NODE_POOL, CLUSTER, EKS_NODE_GROUP) + KARPENTER_NODE_POOL_TYPES


def gke_gpu_count(node_config: Any) -> int:
    """GPUs per node of a GKE node config (0: not a GPU pool)."""
    count = 0
    for acc in items(read(node_config, "guestAccelerators")):
        n = read(acc, "count", default=0)
        count += int(n) if isinstance(n, (int, float)) else 1
    machine = read(node_config, "machineType", default="")
    if not count and isinstance(machine, str) and machine.split("-")[0] in GCE_GPU_FAMILIES:
        count = 1
    return count


def aws_gpu_instance(instance_type: str) -> bool:
    """g4dn.xlarge, g5.2xlarge, p4d.24xlarge... (GPU families start with g or p and a digit)."""
    family = instance_type.split(".")[0]
    return len(family) >= 2 and family[0] in "gp" and family[1].isdigit()


def eks_group_is_gpu(props: Any) -> bool:
    ami = read(props, "amiType", default="")
    if isinstance(ami, str) and ("GPU" in ami or "NVIDIA" in ami):
        return True
    return any(isinstance(t, str) and aws_gpu_instance(t) for t in items(read(props, "instanceTypes")))


_KARPENTER_GPU_KEYS = ("karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-name",
                       "karpenter.k8s.aws/instance-gpu-manufacturer")


def karpenter_is_gpu(props: Any) -> bool:
    if GPU_RESOURCE in mapping(read(props, "spec", "limits")):
        return True
    for req in items(read(props, "spec", "template", "spec", "requirements")):
        key, values = read(req, "key"), [v for v in items(read(req, "values")) if isinstance(v, str)]
        if key in _KARPENTER_GPU_KEYS and read(req, "operator") != "DoesNotExist":
            return True
        if key == "karpenter.k8s.aws/instance-category" and any(v in ("g", "p") for v in values):
            return True
        if key == "karpenter.k8s.aws/instance-family" and any(aws_gpu_instance(v + ".x") for v in values):
            return True
        if key == "node.kubernetes.io/instance-type" and any(aws_gpu_instance(v) for v in values):
            return True
    return False


def _has_gpu_taint(taints: list, effects: tuple[str, ...]) -> bool:
    return any(read(t, "key") == GPU_RESOURCE and read(t, "effect") in effects for t in taints)


_GKE_TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE")
_K8S_TAINT_EFFECTS = ("NoSchedule", "NoExecute")


def _gke_pools(type_: str, props: Any) -> list[tuple[str, Any]]:
    """(label, pool props) of the GKE node pools a resource defines, GPU or not."""
    if type_ == NODE_POOL:
        return [("", props)]
    return [(f"inline node pool {read(p, 'name')!r}: ", p) for p in items(read(props, "nodePools"))]


def _check_gpu_tainted(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ in (NODE_POOL, CLUSTER):
        for label, pool in _gke_pools(type_, props):
            config = read(pool, "nodeConfig")
            if gke_gpu_count(config) and not _has_gpu_taint(items(read(config, "taints")), _GKE_TAINT_EFFECTS):
                yield (f"{label}GPU pool without the {GPU_RESOURCE} NO_SCHEDULE taint: pods that "
                       "need no GPU would hold GPU nodes")
    elif type_ == EKS_NODE_GROUP:
        if eks_group_is_gpu(props) and not _has_gpu_taint(items(read(props, "taints")), _GKE_TAINT_EFFECTS):
            yield f"GPU node group without the {GPU_RESOURCE} NO_SCHEDULE taint"
    elif type_ in KARPENTER_NODE_POOL_TYPES:
        if karpenter_is_gpu(props) and not _has_gpu_taint(
                items(read(props, "spec", "template", "spec", "taints")), _K8S_TAINT_EFFECTS):
            yield f"GPU NodePool without the {GPU_RESOURCE} NoSchedule taint in spec.template.spec.taints"


def _check_gpu_autoscaled(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ in (NODE_POOL, CLUSTER):
        for label, pool in _gke_pools(type_, props):
            if not gke_gpu_count(read(pool, "nodeConfig")):
                continue
            autoscaling = read(pool, "autoscaling")
            top = read(autoscaling, "totalMaxNodeCount", default=read(autoscaling, "maxNodeCount"))
            if not autoscaling or not top:
                yield (f"{label}GPU pool is not autoscaled: set autoscaling with a max node count "
                       "so idle GPU nodes go away")
    elif type_ == EKS_NODE_GROUP:
        if eks_group_is_gpu(props):
            low, high = read(props, "scalingConfig", "minSize"), read(props, "scalingConfig", "maxSize")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high <= low:
                yield f"GPU node group has a fixed size (minSize {low} = maxSize {high})"
    elif type_ in KARPENTER_NODE_POOL_TYPES:
        if karpenter_is_gpu(props) and GPU_RESOURCE not in mapping(read(props, "spec", "limits")):
            yield f"GPU NodePool without spec.limits[{GPU_RESOURCE!r}]: Karpenter could scale without bound"


POLICIES = [
    resource_policy(
        "gpu-pools-tainted",
        "GPU node pools carry the nvidia.com/gpu NoSchedule taint.",
        GPU_POOL_TYPES, _check_gpu_tainted),
    resource_policy(
        "gpu-pools-autoscaled",
        "GPU node pools are autoscaled with an upper bound.",
        GPU_POOL_TYPES, _check_gpu_autoscaled),
]
