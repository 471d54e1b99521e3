"""Filestore: one NFS share for the shared models and people's folders.

Layout on the share: `models/` (filled by the model sync Job, mounted read-only by WebUI
containers) and `users/<id>/` (touched only by the trusted sync sidecar of the pod allocated
to that person). Capacity is validated against the tier's minimum in components/config.py.
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.config import StorageConfig
from components.gcp.network import Network

# Filestore locations: BASIC/ZONAL tiers are zonal, REGIONAL/ENTERPRISE regional.
ZONAL_TIERS = {"BASIC_HDD", "BASIC_SSD", "ZONAL"}


class SharedStore(pulumi.ComponentResource):
    """`sdfleet:gcp:SharedStore`."""

    def __init__(self, name: str, config: StorageConfig, network: Network, region: str,
                 zone: str, labels: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:SharedStore", name, None, opts)
        self.share_name = config.share_name
        self.instance = gcp.filestore.Instance(
            f"{name}-filestore", name=f"{name}-filestore", tier=config.tier,
            location=zone if config.tier in ZONAL_TIERS else region,
            file_shares=gcp.filestore.InstanceFileSharesArgs(
                name=config.share_name, capacity_gb=config.capacity_gb,
                nfs_export_options=[gcp.filestore.InstanceFileSharesNfsExportOptionArgs(
                    # Only the VPC's node and pod ranges may mount; root squashed.
                    ip_ranges=[network.config.nodes_cidr, network.config.pods_cidr],
                    access_mode="READ_WRITE", squash_mode="ROOT_SQUASH",
                    anon_uid=1000, anon_gid=1000)]),
            networks=[gcp.filestore.InstanceNetworkArgs(
                network=network.vpc_name, modes=["MODE_IPV4"],
                connect_mode="PRIVATE_SERVICE_ACCESS")],
            labels=labels,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[network.private_services]))
        self.ip_address = self.instance.networks.apply(lambda nets: nets[0].ip_addresses[0])
        self.register_outputs({"ipAddress": self.ip_address})
