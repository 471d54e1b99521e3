"""The EC2 GPU instance types the batch variant may run on, and what a pod can have of one.

One source for the worker's requests (components/aws/platform.py), the config rule that
refuses a worker no allowed node can hold (rules.py), and the node the cost estimate prices
(tools/cost/aws.py). A worker that does not fit the node type it was meant for makes
Karpenter launch the next size up: every job then pays for a 2xlarge.

Shapes: the EC2 accelerated-computing instance pages (vCPUs, memory, GPUs); pods per node:
the ENI limit, `ENIs x (IPv4 per ENI - 1) + 2` (EKS `eni-max-pods.txt`). What Karpenter
subtracts before it decides whether a pod fits (the Karpenter AWS provider's instance-type
capacity and overhead): `VM_MEMORY_OVERHEAD` of the memory, kube-reserved as the EKS AMIs
compute it (CPU: 6 % of the first core, 1 % of the second, 0.5 % of the third and fourth,
0.25 % of the rest; memory: 11 MiB per pod + 255 MiB), and the kubelet's hard eviction
threshold (100 MiB). The daemon sets on every node (the EKS add-ons the stack installs)
ask for `NODE_DAEMONS` more.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceType:
    vcpus: int
    memory_mib: int
    gpus: int
    max_pods: int


INSTANCE_TYPES: dict[str, InstanceType] = {
    "g4dn.xlarge": InstanceType(4, 16 * 1024, 1, 29),
    "g4dn.2xlarge": InstanceType(8, 32 * 1024, 1, 29),
    "g4dn.4xlarge": InstanceType(16, 64 * 1024, 1, 29),
    "g5.xlarge": InstanceType(4, 16 * 1024, 1, 58),
    "g5.2xlarge": InstanceType(8, 32 * 1024, 1, 58),
    "g5.4xlarge": InstanceType(16, 64 * 1024, 1, 234),
    "g6.xlarge": InstanceType(4, 16 * 1024, 1, 58),
    "g6.2xlarge": InstanceType(8, 32 * 1024, 1, 58),
    "g6.4xlarge": InstanceType(16, 64 * 1024, 1, 234),
    "g6e.xlarge": InstanceType(4, 32 * 1024, 1, 58),
    "g6e.2xlarge": InstanceType(8, 64 * 1024, 1, 58),
    "p3.2xlarge": InstanceType(8, 61 * 1024, 1, 58),
    "p4d.24xlarge": InstanceType(96, 1152 * 1024, 8, 737),
}

# Karpenter's default `vmMemoryOverheadPercent`: the hypervisor keeps part of the memory.
VM_MEMORY_OVERHEAD = 0.075
EVICTION_HARD_MIB = 100
# Requests of the daemon sets on every node: vpc-cni (aws-node 25m), kube-proxy (100m),
# eks-pod-identity-agent and the EFS CSI node plugin, rounded up.
NODE_DAEMONS = (250, 256)          # (CPU millicores, memory MiB)
# The queue agent beside the WebUI in each worker pod (components/k8s/batch.py).
AGENT_REQUESTS = (100, 256)        # (CPU millicores, memory MiB)
AGENT_MEMORY_LIMIT_MIB = 512


def family(instance_type: str) -> str:
    return instance_type.split(".")[0]


def kube_reserved_cpu_millis(vcpus: int) -> int:
    steps = ((1, 0.06), (1, 0.01), (2, 0.005), (math.inf, 0.0025))
    left, reserved = vcpus, 0.0
    for cores, share in steps:
        taken = min(left, cores)
        reserved += taken * 1000 * share
        left -= taken
        if left <= 0:
            break
    return math.ceil(reserved)


def allocatable(instance_type: str) -> tuple[int, int]:
    """(CPU millicores, memory MiB) Karpenter expects a pod may ask for on a node of this type,
    before daemon sets."""
    t = INSTANCE_TYPES[instance_type]
    memory = t.memory_mib - math.ceil(t.memory_mib * VM_MEMORY_OVERHEAD)
    memory -= 11 * t.max_pods + 255 + EVICTION_HARD_MIB
    return t.vcpus * 1000 - kube_reserved_cpu_millis(t.vcpus), memory


def for_one_gpu_pod(instance_type: str) -> tuple[int, int]:
    """What a one-GPU worker (WebUI + agent) may ask for on a node of this type, per GPU."""
    cpu, memory = allocatable(instance_type)
    gpus = INSTANCE_TYPES[instance_type].gpus
    return ((cpu - NODE_DAEMONS[0]) // gpus - AGENT_REQUESTS[0],
            (memory - NODE_DAEMONS[1]) // gpus - AGENT_REQUESTS[1])


def types_of(families: list[str] | tuple[str, ...]) -> list[str]:
    return [name for name in INSTANCE_TYPES if family(name) in families]


def smallest_of_each(families: list[str] | tuple[str, ...]) -> list[str]:
    smallest: dict[str, str] = {}
    for name in types_of(families):
        current = smallest.get(family(name))
        if current is None or INSTANCE_TYPES[name].vcpus < INSTANCE_TYPES[current].vcpus:
            smallest[family(name)] = name
    return list(smallest.values())


def default_worker(families: list[str] | tuple[str, ...]) -> tuple[str, str]:
    """The WebUI's (cpu, memory) requests that fill one GPU of the smallest node of every
    allowed family, so Karpenter may take whichever is cheapest."""
    room = [for_one_gpu_pod(name) for name in smallest_of_each(families)]
    cpu = min(c for c, _ in room)
    memory = min(m for _, m in room)
    return f"{cpu}m", f"{memory}Mi"


_UNITS = {"": 1, "m": 0.001, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def cpu_millis(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9.]+)(m?)", quantity).groups()
    return round(float(number) * (1 if unit == "m" else 1000))


def memory_mib(quantity: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti)?", quantity).groups()
    return float(number) * _UNITS[unit or ""] / 1024 ** 2


def fitting_types(families: list[str] | tuple[str, ...], cpu: str, memory: str) -> list[str]:
    """The allowed instance types a worker with these WebUI requests fits on."""
    want_cpu, want_mem = cpu_millis(cpu), memory_mib(memory)
    return [name for name in types_of(families)
            if for_one_gpu_pod(name)[0] >= want_cpu and for_one_gpu_pod(name)[1] >= want_mem]
