"""Filestore: one NFS share for the shared models and people's folders.

Layout on the share: `models/` (filled by the model sync Job, mounted read-only by WebUI
containers) and `users/<id>/` (touched only by the trusted sync sidecar of the pod allocated
to that person). Capacity is validated against the tier's minimum in components/config/rules.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config import StorageConfig
from components.gcp.network import Network

# Filestore locations: BASIC/ZONAL tiers are zonal, REGIONAL/ENTERPRISE regional.
ZONAL_TIERS = {"BASIC_HDD", "BASIC_SSD", "ZONAL"}


def share_export(nodes_cidr: str) -> gcp.filestore.InstanceFileSharesNfsExportOptionArgs:
    """Who may mount the share: the nodes, and nothing else.

    Every mount comes from a node (the kubelet mounts the PersistentVolume), so the node
    range is the only client; a pod's own address (a user-space NFS client in a pod) is
    refused, and WebUI pods may not even open the port (components/k8s/fleet.py, egress
    policy). No root squash: a new share's root is root-owned 755, so only root can make the
    `models/` and `users/` folders (the one trusted root step, components/k8s/shared_volume.py
    `prepare`); with ROOT_SQUASH nothing could, and the first deploy fails. Every other pod
    that mounts the share runs as uid 1000 without privilege escalation. Filestore API
    `NfsExportOptions`: anonUid/anonGid may only be set with ROOT_SQUASH.
    """
    return gcp.filestore.InstanceFileSharesNfsExportOptionArgs(
        ip_ranges=[nodes_cidr], access_mode="READ_WRITE", squash_mode="NO_ROOT_SQUASH")


@dataclass(frozen=True)
class SharedStoreArgs:
    config: StorageConfig
    network: Network
    region: str
    zone: str
    labels: dict[str, str]


class SharedStore(pulumi.ComponentResource):
    """`sdfleet:gcp:SharedStore`."""

    def __init__(self, name: str, args: SharedStoreArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:SharedStore", name, None, opts)
        self.share_name = args.config.share_name
        self.instance = gcp.filestore.Instance(
            f"{name}-filestore", name=f"{name}-filestore", tier=args.config.tier,
            location=args.zone if args.config.tier in ZONAL_TIERS else args.region,
            file_shares=gcp.filestore.InstanceFileSharesArgs(
                name=args.config.share_name, capacity_gb=args.config.capacity_gb,
                nfs_export_options=[share_export(args.network.config.nodes_cidr)]),
            networks=[gcp.filestore.InstanceNetworkArgs(
                network=args.network.vpc_name, modes=["MODE_IPV4"],
                connect_mode="PRIVATE_SERVICE_ACCESS")],
            labels=args.labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.network.private_services]))
        self.ip_address = self.instance.networks.apply(lambda nets: nets[0].ip_addresses[0])
        self.register_outputs({"ipAddress": self.ip_address})
