"""GKE hardening: private nodes, Workload Identity, Shielded Nodes."""

from __future__ import annotations

from typing import Any, Iterable

from .define import resource_policy
from .inputs import Unknown, items, read

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"


def _autopilot(props: Any) -> bool:
    # Autopilot clusters always have private-capable nodes, Workload Identity and Shielded Nodes.
    return read(props, "enableAutopilot") is True


def _check_private_nodes(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        if _autopilot(props):
            private = read(props, "privateClusterConfig", "enablePrivateNodes")
            if private is False:
                yield "privateClusterConfig.enablePrivateNodes is false"
            return
        private = read(props, "privateClusterConfig", "enablePrivateNodes")
        if private is not True and not isinstance(private, Unknown):
            yield ("privateClusterConfig.enablePrivateNodes must be true: nodes get no external "
                   "IP (egress goes through Cloud NAT)")
        for pool in items(read(props, "nodePools")):
            if read(pool, "networkConfig", "enablePrivateNodes") is False:
                yield f"inline node pool {read(pool, 'name')!r} sets networkConfig.enablePrivateNodes false"
    elif read(props, "networkConfig", "enablePrivateNodes") is False:
        yield "networkConfig.enablePrivateNodes is false: this pool's nodes would get external IPs"


def _check_workload_identity(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        if _autopilot(props):
            return
        pool = read(props, "workloadIdentityConfig", "workloadPool")
        if not pool:
            yield ("workloadIdentityConfig.workloadPool must be set (<project>.svc.id.goog): pods "
                   "get their own identities, never the node's")
        configs = [read(props, "nodeConfig")] + [read(p, "nodeConfig") for p in items(read(props, "nodePools"))]
    else:
        configs = [read(props, "nodeConfig")]
    for node_config in configs:
        mode = read(node_config, "workloadMetadataConfig", "mode")
        if mode == "GCE_METADATA":
            yield ("nodeConfig.workloadMetadataConfig.mode is GCE_METADATA: pods could read the "
                   "node's credentials; use GKE_METADATA")


def _check_shielded_nodes(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        # The provider defaults enableShieldedNodes to true; only an explicit false turns it off.
        if read(props, "enableShieldedNodes") is False:
            yield "enableShieldedNodes is false"
        configs = [read(props, "nodeConfig")] + [read(p, "nodeConfig") for p in items(read(props, "nodePools"))]
    else:
        configs = [read(props, "nodeConfig")]
    for node_config in configs:
        if read(node_config, "shieldedInstanceConfig", "enableSecureBoot") is False \
                and read(node_config, "shieldedInstanceConfig", "enableIntegrityMonitoring") is False:
            yield "nodeConfig.shieldedInstanceConfig turns off both secure boot and integrity monitoring"


POLICIES = [
    resource_policy(
        "gke-private-nodes",
        "GKE nodes are private (no external IPs).",
        (CLUSTER, NODE_POOL), _check_private_nodes),
    resource_policy(
        "gke-workload-identity",
        "GKE uses Workload Identity; no node pool exposes the node's metadata to pods.",
        (CLUSTER, NODE_POOL), _check_workload_identity),
    resource_policy(
        "gke-shielded-nodes",
        "GKE Shielded Nodes stay on.",
        (CLUSTER, NODE_POOL), _check_shielded_nodes),
]
