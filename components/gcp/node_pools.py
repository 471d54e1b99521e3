"""GKE node pools: the always-on system pool and one autoscaled pool per configured GPU type.

GPU pools carry the `nvidia.com/gpu=present:NoSchedule` taint so only pods that ask for a GPU
(and tolerate it) land there; GKE installs the driver; autoscaling runs from `minNodes` (0 is
fine: the first person waits for a node) to `maxNodes` across the pool's zones; each pool runs
as its own service account with only the node roles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp

from components.config import GpuPoolConfig, SystemPoolConfig
from components.gcp.service_account import NODE_ROLES, ServiceAccount, ServiceAccountArgs, account_id
from components.k8s.pods import CAPACITY_LABEL, GPU_RESOURCE, POOL_LABEL, SYSTEM_POOL, NodePlacement, Taint

# The GPU taint, set on every GPU pool. GKE puts key `nvidia.com/gpu`, effect NoSchedule on GPU
# nodes itself when the cluster also has non-GPU pools (GKE docs, "Run GPUs in GKE Standard node
# pools": "GKE automatically taints the GPU nodes"; its nodes show `nvidia.com/gpu=present`);
# setting it explicitly keeps the value we tolerate the one the nodes carry.
GPU_TAINT = Taint(GPU_RESOURCE, "present", "NoSchedule")
SYSTEM_POOL_NAME = SYSTEM_POOL
# A GKE custom compute class: the node label and taint that tie a node pool to the class, and
# the label a pod selects the class with (GKE docs, "About custom compute classes").
COMPUTE_CLASS_LABEL = "cloud.google.com/compute-class"
# The on-demand pool that stands behind a Spot pool.
FALLBACK_SUFFIX = "-od"
# How a node uses a preloaded disk (GKE API `SecondaryBootDisk.mode`): as a container image cache.
PRELOAD_DISK_MODE = "CONTAINER_IMAGE_CACHE"


def compute_class_name(prefix: str, pool: str) -> str:
    """The compute class that orders a GPU pool's node pools: Spot first, then on-demand."""
    return f"{prefix}-{pool}"


def gpu_placement(pool: GpuPoolConfig, prefix: str) -> NodePlacement:
    """Where a pod that asks for a GPU of `pool` runs: its label and the GPU taint tolerated;
    with an on-demand fallback, also its compute class (selected and its taint tolerated), so
    the autoscaler tries the Spot pool before the on-demand one."""
    if not pool.on_demand_fallback:
        return NodePlacement.on(pool.name, GPU_TAINT)
    name = compute_class_name(prefix, pool.name)
    placement = NodePlacement.on(pool.name, GPU_TAINT, Taint(COMPUTE_CLASS_LABEL, name, "NoSchedule"))
    return NodePlacement({**placement.node_selector, COMPUTE_CLASS_LABEL: name},
                         placement.tolerations, placement.annotations)


def _hardened_node_config(machine_type: str, disk_size_gb: int, disk_type: str, spot: bool,
                          service_account: pulumi.Input[str], labels: dict[str, str],
                          resource_labels: dict[str, str], **extra) -> gcp.container.NodePoolNodeConfigArgs:
    return gcp.container.NodePoolNodeConfigArgs(
        machine_type=machine_type, disk_size_gb=disk_size_gb, disk_type=disk_type, spot=spot,
        image_type="COS_CONTAINERD", service_account=service_account,
        oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
        workload_metadata_config=gcp.container.NodePoolNodeConfigWorkloadMetadataConfigArgs(
            mode="GKE_METADATA"),
        shielded_instance_config=gcp.container.NodePoolNodeConfigShieldedInstanceConfigArgs(
            enable_secure_boot=True, enable_integrity_monitoring=True),
        gcfs_config=gcp.container.NodePoolNodeConfigGcfsConfigArgs(enabled=True),
        metadata={"disable-legacy-endpoints": "true"},
        labels=labels, resource_labels=resource_labels, **extra)


@dataclass(frozen=True)
class SystemNodePoolArgs:
    config: SystemPoolConfig
    cluster: gcp.container.Cluster
    region: str
    labels: dict[str, str]
    service_account: ServiceAccount
    zones: list[str] = field(default_factory=list)   # empty: the cluster's zones


class SystemNodePool(pulumi.ComponentResource):
    """`sdfleet:gcp:SystemNodePool`: router, Agones controllers, system pods."""

    def __init__(self, name: str, args: SystemNodePoolArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:SystemNodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Shared with the cluster's short-lived default pool, so it is made by the platform.
        self.service_account = args.service_account
        self.node_pool = gcp.container.NodePool(
            f"{name}", name=SYSTEM_POOL_NAME, cluster=args.cluster.id, location=args.region,
            node_locations=list(args.zones) or None,
            # A node in every zone from the start (the count is per zone): GKE's NEG
            # controller makes a zone's NEG only once a node is there, and the load balancer
            # takes one NEG per zone (components/gcp/load_balancer.py).
            initial_node_count=1,
            autoscaling=gcp.container.NodePoolAutoscalingArgs(
                total_min_node_count=args.config.min_nodes, total_max_node_count=args.config.max_nodes,
                location_policy="BALANCED"),
            management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
            node_config=_hardened_node_config(
                args.config.machine_type, args.config.disk_size_gb, args.config.disk_type, args.config.spot,
                self.service_account.email, {POOL_LABEL: SYSTEM_POOL}, args.labels),
            opts=child)
        self.register_outputs({"name": self.node_pool.name})


@dataclass(frozen=True)
class GpuNodePoolArgs:
    config: GpuPoolConfig
    cluster: gcp.container.Cluster
    project: str
    region: str
    prefix: str
    labels: dict[str, str]
    # Disk images (`global/images/<name>`) every node starts with: the preloaded WebUI images.
    preload_disks: list[pulumi.Input[str]] = field(default_factory=list)


def _rolled_name(base: str, disks: list[str]) -> str:
    """The pool's name with a hash of its disk images: a new disk image makes a new pool
    (created before the old one goes), the way GKE takes a changed secondary boot disk."""
    return f"{base}-{hashlib.sha256(json.dumps(disks).encode()).hexdigest()[:6]}"


class GpuNodePool(pulumi.ComponentResource):
    """`sdfleet:gcp:GpuNodePool`: one GPU type, tainted, autoscaled, driver installed."""

    def __init__(self, name: str, args: GpuNodePoolArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:GpuNodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.config = args.config
        self.service_account = ServiceAccount(f"{name}-nodes", ServiceAccountArgs(
                account_id(args.prefix, f"gpu-{args.config.name}"), f"sdfleet GPU node pool {args.config.name}",
                args.project, NODE_ROLES),
                opts=child)

        sharing = None
        if args.config.time_sharing_clients:
            sharing = gcp.container.NodePoolNodeConfigGuestAcceleratorGpuSharingConfigArgs(
                gpu_sharing_strategy="TIME_SHARING",
                max_shared_clients_per_gpu=args.config.time_sharing_clients)
        accelerator = gcp.container.NodePoolNodeConfigGuestAcceleratorArgs(
            type=args.config.accelerator, count=args.config.accelerator_count,
            gpu_driver_installation_config=gcp.container.NodePoolNodeConfigGuestAcceleratorGpuDriverInstallationConfigArgs(
                                    gpu_driver_version=args.config.driver_version),
            gpu_sharing_config=sharing)

        node_labels = {POOL_LABEL: args.config.name, "sdfleet.dev/gpu": "true",
                       "sdfleet.dev/accelerator": args.config.accelerator}
        taints = [GPU_TAINT]
        self.compute_class: str | None = None
        if args.config.on_demand_fallback:
            self.compute_class = compute_class_name(args.prefix, args.config.name)
            node_labels[COMPUTE_CLASS_LABEL] = self.compute_class
            taints.append(Taint(COMPUTE_CLASS_LABEL, self.compute_class, "NoSchedule"))

        preload = None
        if args.preload_disks:
            preload = [gcp.container.NodePoolNodeConfigSecondaryBootDiskArgs(
                disk_image=disk, mode=PRELOAD_DISK_MODE) for disk in args.preload_disks]

        def node_pool(resource: str, pool_name: pulumi.Input[str], spot: bool,
                      min_nodes: int) -> gcp.container.NodePool:
            return gcp.container.NodePool(
                resource, name=pool_name, cluster=args.cluster.id, location=args.region,
                node_locations=args.config.zones or None,
                autoscaling=gcp.container.NodePoolAutoscalingArgs(
                    total_min_node_count=min_nodes, total_max_node_count=args.config.max_nodes,
                    # ANY finds capacity in whichever zone has GPUs (and Spot) available.
                    location_policy="ANY"),
                management=gcp.container.NodePoolManagementArgs(auto_repair=True, auto_upgrade=True),
                node_config=_hardened_node_config(
                    args.config.machine_type, args.config.disk_size_gb, args.config.disk_type, spot,
                    self.service_account.email,
                    {**node_labels, **({CAPACITY_LABEL: "spot" if spot else "on-demand"}
                                       if self.compute_class else {})},
                    args.labels, guest_accelerators=[accelerator],
                    taints=[gcp.container.NodePoolNodeConfigTaintArgs(**t.gke()) for t in taints],
                    secondary_boot_disks=preload),
                opts=child)

        base = f"gpu-{args.config.name}"
        self.pool_name: pulumi.Input[str] = base
        if args.preload_disks:
            self.pool_name = pulumi.Output.all(*args.preload_disks).apply(
                lambda disks: _rolled_name(base, list(disks)))
        self.node_pool = node_pool(f"{name}", self.pool_name, args.config.spot, args.config.min_nodes)
        # Only ever scaled up when the Spot pool cannot be (the compute class's order), and
        # back to nothing when idle.
        self.fallback_pool_name: pulumi.Input[str] | None = None
        self.fallback_pool = None
        if args.config.on_demand_fallback:
            self.fallback_pool_name = pulumi.Output.concat(self.pool_name, FALLBACK_SUFFIX)
            self.fallback_pool = node_pool(f"{name}{FALLBACK_SUFFIX}", self.fallback_pool_name,
                                           False, 0)
        self.register_outputs({"name": self.node_pool.name})
