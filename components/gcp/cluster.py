"""The GKE cluster: VPC-native, private nodes, Workload Identity, Shielded Nodes, image streaming.

The default node pool is removed right after creation (node pools are separate resources, so
changing one never recreates the cluster); while it briefly exists it runs as the system pool's
service account, never the broad default compute account. Dataplane V2 enforces the
NetworkPolicies that keep WebUI pods reachable only from the router.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config import ClusterConfig, NetworkConfig
from components.gcp.network import Network

# A fixed start keeps the exclusion from changing on every `pulumi up`; it only has to lie
# before the cluster exists.
MINOR_HOLD_START = "2026-01-01T00:00:00Z"


@dataclass(frozen=True)
class GkeClusterArgs:
    config: ClusterConfig
    network_config: NetworkConfig
    network: Network
    project: str
    region: str
    bootstrap_service_account: pulumi.Input[str]
    labels: dict[str, str]


class GkeCluster(pulumi.ComponentResource):
    """`sdfleet:gcp:GkeCluster`."""

    def __init__(self, name: str, args: GkeClusterArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:GkeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # Besides the listed networks, the functions' VPC connector must reach the private
        # endpoint: with authorized networks on, only the node subnet gets in by default.
        blocks = [(n.name, n.cidr) for n in args.config.authorized_networks]
        blocks.append(("functions-vpc-connector", args.network_config.connector_cidr))
        authorized = gcp.container.ClusterMasterAuthorizedNetworksConfigArgs(
            cidr_blocks=[gcp.container.ClusterMasterAuthorizedNetworksConfigCidrBlockArgs(
                cidr_block=cidr, display_name=name) for name, cidr in blocks],
            gcp_public_cidrs_access_enabled=False)

        self.cluster = gcp.container.Cluster(
            name, name=name, location=args.region, project=args.project,
            node_locations=args.config.zones or None,
            network=args.network.vpc.id, subnetwork=args.network.subnet.id,
            networking_mode="VPC_NATIVE",
            ip_allocation_policy=gcp.container.ClusterIpAllocationPolicyArgs(
                cluster_secondary_range_name=Network.PODS_RANGE,
                services_secondary_range_name=Network.SERVICES_RANGE),
            private_cluster_config=gcp.container.ClusterPrivateClusterConfigArgs(
                enable_private_nodes=args.config.private_nodes,
                enable_private_endpoint=args.config.private_endpoint,
                master_ipv4_cidr_block=args.network_config.control_plane_cidr,
                master_global_access_config=gcp.container.ClusterPrivateClusterConfigMasterGlobalAccessConfigArgs(
                    enabled=False)),
            master_authorized_networks_config=authorized,
            workload_identity_config=gcp.container.ClusterWorkloadIdentityConfigArgs(
                workload_pool=f"{args.project}.svc.id.goog"),
            release_channel=gcp.container.ClusterReleaseChannelArgs(channel=args.config.release_channel),
            # The minor Agones supports, held there: the channel still brings patches, but
            # its minor upgrades are excluded until that minor's end of support (GKE
            # "maintenance exclusions": NO_MINOR_UPGRADES with UNTIL_END_OF_SUPPORT).
            min_master_version=args.config.kubernetes_version,
            maintenance_policy=gcp.container.ClusterMaintenancePolicyArgs(
                maintenance_exclusions=[gcp.container.ClusterMaintenancePolicyMaintenanceExclusionArgs(
                    exclusion_name="sdfleet-agones-supported-minor",
                    start_time=MINOR_HOLD_START,
                    exclusion_options=gcp.container.ClusterMaintenancePolicyMaintenanceExclusionExclusionOptionsArgs(
                        scope="NO_MINOR_UPGRADES", end_time_behavior="UNTIL_END_OF_SUPPORT"))]),
            enable_shielded_nodes=True,
            datapath_provider="ADVANCED_DATAPATH",
            node_pool_defaults=gcp.container.ClusterNodePoolDefaultsArgs(
                node_config_defaults=gcp.container.ClusterNodePoolDefaultsNodeConfigDefaultsArgs(
                    gcfs_config=gcp.container.ClusterNodePoolDefaultsNodeConfigDefaultsGcfsConfigArgs(
                        enabled=True))),
            remove_default_node_pool=True, initial_node_count=1,
            node_config=gcp.container.ClusterNodeConfigArgs(
                service_account=args.bootstrap_service_account,
                oauth_scopes=["https://www.googleapis.com/auth/cloud-platform"],
                workload_metadata_config=gcp.container.ClusterNodeConfigWorkloadMetadataConfigArgs(
                    mode="GKE_METADATA"),
                shielded_instance_config=gcp.container.ClusterNodeConfigShieldedInstanceConfigArgs(
                    enable_secure_boot=True, enable_integrity_monitoring=True)),
            addons_config=gcp.container.ClusterAddonsConfigArgs(
                http_load_balancing=gcp.container.ClusterAddonsConfigHttpLoadBalancingArgs(
                    disabled=False),
                gcp_filestore_csi_driver_config=gcp.container.ClusterAddonsConfigGcpFilestoreCsiDriverConfigArgs(
                    enabled=True),
                gce_persistent_disk_csi_driver_config=gcp.container.ClusterAddonsConfigGcePersistentDiskCsiDriverConfigArgs(
                    enabled=True)),
            # Mounts Secret Manager secrets into pods (the router's Redis AUTH string and CA).
            secret_manager_config=gcp.container.ClusterSecretManagerConfigArgs(enabled=True),
            cost_management_config=gcp.container.ClusterCostManagementConfigArgs(enabled=True),
            logging_config=gcp.container.ClusterLoggingConfigArgs(
                enable_components=["SYSTEM_COMPONENTS", "WORKLOADS"]),
            resource_labels=args.labels,
            deletion_protection=args.config.deletion_protection,
            opts=child)

        self.name = self.cluster.name
        # `<project>.svc.id.goog`, as an output: IAM bindings on it wait for the cluster.
        self.workload_pool = self.cluster.workload_identity_config.apply(
            lambda c: c.workload_pool if c else None)
        self.endpoint = self.cluster.endpoint
        self.ca_certificate = self.cluster.master_auth.cluster_ca_certificate
        # The functions reach the control plane inside the VPC, through the connector.
        self.private_endpoint = self.cluster.private_cluster_config.apply(
            lambda c: c.private_endpoint if c else None)
        self.register_outputs({"name": self.cluster.name, "endpoint": self.cluster.endpoint})
