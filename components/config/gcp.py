"""The GCP sections of the config: network, cluster, node pools, the shared store, the cache."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator

from components.config.fields import Accelerator, Cidr, DnsLabel, GceMachineType, Section, _gpu_count
from components.config.versions import AGONES_CHART_VERSION, AGONES_KUBERNETES_MINORS


class NetworkConfig(Section):
    """GCP VPC ranges: one subnet for nodes, secondary ranges for pods and services."""

    nodes_cidr: Cidr = Field("10.10.0.0/20", description="Primary range of the node subnet.")
    pods_cidr: Cidr = Field(
        "10.16.0.0/14",
        description="Secondary range for pod addresses (GKE VPC-native).")
    services_cidr: Cidr = Field(
        "10.20.0.0/20",
        description="Secondary range for Service cluster IPs.")
    control_plane_cidr: Annotated[Cidr, Field(description="A /28 for the GKE control plane (private cluster).")] = \
        "172.16.0.0/28"
    # Private services access (Filestore, Memorystore) peers into this range.
    private_services_cidr: Cidr = Field(
        "10.30.0.0/20",
        description="Range that private services access (Filestore, Memorystore) peers into.")
    # Serverless VPC Access connector for the functions' egress to Redis and the cluster.
    connector_cidr: Cidr = Field(
        "10.31.0.0/28",
        description=("A /28 for the Serverless VPC Access connector, the functions' way to Redis and the "
                    "cluster."))

    @field_validator("connector_cidr")
    @classmethod
    def _connector_is_28(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen != 28:
            raise ValueError("a Serverless VPC Access connector needs a /28, e.g. 10.31.0.0/28")
        return value

    @field_validator("control_plane_cidr")
    @classmethod
    def _control_plane_is_28(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen != 28:
            raise ValueError("GKE needs a /28 for the control plane, e.g. 172.16.0.0/28")
        return value


class AuthorizedNetwork(Section):
    name: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="A label for the range (shown in the GKE console).")
    cidr: Cidr = Field(description="The range allowed to reach the cluster's API endpoint.")


class ClusterConfig(Section):
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = Field(
        "REGULAR",
        description="GKE release channel: patch upgrades come from it; minor upgrades are held "
                    "(see kubernetesVersion).")
    kubernetes_version: str = Field(
        AGONES_KUBERNETES_MINORS[-1],
        description=("Kubernetes minor of the control plane and nodes, one the pinned Agones "
                     f"{AGONES_CHART_VERSION} supports ({', '.join(AGONES_KUBERNETES_MINORS)}). "
                     "GKE's automatic minor upgrades are excluded until the minor's end of "
                     "support, so Agones and Kubernetes move together, by config."))

    @field_validator("kubernetes_version")
    @classmethod
    def _agones_supports_it(cls, value: str) -> str:
        if value not in AGONES_KUBERNETES_MINORS:
            raise ValueError(
                f"{value!r}: Agones {AGONES_CHART_VERSION} supports Kubernetes "
                f"{', '.join(AGONES_KUBERNETES_MINORS)} only (a minor, e.g. "
                f"{AGONES_KUBERNETES_MINORS[-1]!r}); moving past it needs a newer Agones")
        return value
    # Node locations; empty means the region's default zones.
    zones: list[str] = Field(
        default_factory=list,
        description="Node locations; empty means the region's default zones. Each must be in gcp:region.")
    private_nodes: bool = Field(
        True,
        description="Nodes get internal addresses only (egress through Cloud NAT).")
    # A private endpoint also hides the control plane from authorized networks' public IPs.
    private_endpoint: bool = Field(
        False,
        description=("Hide the control plane's public endpoint too; `pulumi up` must then run from inside "
                    "the VPC."))
    authorized_networks: list[AuthorizedNetwork] = Field(
        default_factory=list,
        description=("Ranges that may reach the cluster's API endpoint (the functions' connector is always "
                    "added)."))
    deletion_protection: bool = Field(
        True,
        description="Refuse to delete the cluster (turn off before `pulumi destroy`).")


class SystemPoolConfig(Section):
    """The small always-on pool for the router, Agones controllers and other system pods."""

    machine_type: GceMachineType = Field(
        "e2-standard-4",
        description="GCE machine type of the system nodes, e.g. e2-standard-4.")
    min_nodes: Annotated[int, Field(ge=1, le=100)] = Field(
        1,
        description="Fewest system nodes across the region.")
    max_nodes: Annotated[int, Field(ge=1, le=100)] = Field(
        3,
        description="Most system nodes across the region.")
    disk_size_gb: Annotated[int, Field(ge=20, le=2000)] = Field(
        100,
        description="Boot disk size of each system node, in GB.")
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd"] = Field(
        "pd-balanced",
        description="Boot disk type of each system node.")
    spot: bool = Field(
        False,
        description="Run the system nodes on Spot VMs (cheaper, may be preempted).")


class GpuPoolConfig(Section):
    name: DnsLabel = Field(
        description=("The pool's name (a DNS label); node pool `gpu-<name>`, and what fleet.gpuPool refers "
                    "to."))
    machine_type: GceMachineType = Field(
        description=("GCE machine type; its family must fit the accelerator (g2 for L4, a2 for A100, n1 for "
                    "T4/V100/P4/P100, a3 for H100)."))
    accelerator: Accelerator = Field(description="GPU type attached to each node.")
    # An int field, not Literal[1, 2, 4, 8]: a Literal admits `true` (True == 1).
    accelerator_count: Annotated[int, AfterValidator(_gpu_count)] = Field(
        1,
        description="GPUs per node (1, 2, 4 or 8); a WebUI pod takes all of a node's GPUs.")
    min_nodes: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Fewest nodes (0: the first person waits for a node).")
    max_nodes: Annotated[int, Field(ge=1, le=1000)] = Field(4, description="Most nodes.")
    spot: bool = Field(
        False,
        description="Use Spot VMs (cheaper, may be preempted, ending a session).")
    on_demand_fallback: bool = Field(
        False,
        description=("With spot: when no Spot VM of this type can be had, start an on-demand one "
                     "(a second node pool `gpu-<name>-od`, tried only after the Spot pool)."))
    disk_size_gb: Annotated[int, Field(ge=50, le=4000)] = Field(
        200,
        description="Boot disk size per node, in GB (WebUI images are large).")
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd"] = Field(
        "pd-ssd",
        description="Boot disk type per node.")
    # GPU time-sharing: that many pods share one GPU (None: one pod per GPU).
    time_sharing_clients: Optional[Annotated[int, Field(ge=2, le=48)]] = Field(
        None,
        description="GPU time-sharing: this many pods share one GPU; unset gives one pod per GPU.")
    driver_version: Literal["DEFAULT", "LATEST"] = Field(
        "LATEST",
        description="NVIDIA driver GKE installs (DEFAULT or LATEST for the node version).")
    # Node locations for this pool; empty means the cluster's.
    zones: list[str] = Field(
        default_factory=list,
        description="Node locations for this pool; empty means the cluster's. Each must be in gcp:region.")

    @property
    def gpus_per_pod(self) -> float:
        """What one WebUI pod holds: the node's GPUs, or their time-shared part (usage is
        counted in GPU-seconds)."""
        return self.accelerator_count / (self.time_sharing_clients or 1)


# --- Storage, cache -----------------------------------------------------------------------------

# Filestore tiers and their smallest instance, in GiB (Filestore docs, "Service tiers").
FILESTORE_MIN_CAPACITY_GB = {
    "BASIC_HDD": 1024,
    "BASIC_SSD": 2560,
    "ZONAL": 1024,
    "REGIONAL": 1024,
    "ENTERPRISE": 1024,
}


class StorageConfig(Section):
    """Shared store: models (read-only for WebUIs) and people's folders (trusted sync only)."""

    tier: Literal["BASIC_HDD", "BASIC_SSD", "ZONAL", "REGIONAL", "ENTERPRISE"] = Field(
        "BASIC_HDD",
        description="Filestore service tier.")
    capacity_gb: Annotated[int, Field(ge=1024, le=102400)] = Field(
        1024,
        description="Share size in GiB, at least the tier's minimum (1024; 2560 for BASIC_SSD).")
    share_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")] = Field(
        "sdfleet",
        description="Name of the NFS file share.")
    nfs_connections: Optional[Annotated[int, Field(ge=1, le=16)]] = Field(
        None,
        description=("TCP connections per node to the share (NFS `nconnect`); unset: 1 for "
                     "BASIC_HDD (its 100 MiB/s fits one), 4 for the faster tiers."))

    @property
    def connections(self) -> int:
        """One TCP connection carries a few hundred MiB/s at most: the faster tiers need more
        to reach their rate; BASIC_HDD's 100 MiB/s per TiB does not."""
        if self.nfs_connections is not None:
            return self.nfs_connections
        return 1 if self.tier == "BASIC_HDD" else 4


class MaintenanceWindow(Section):
    """When Memorystore may do its weekly maintenance (a one-hour window, UTC). A Basic
    instance loses its data then; sessions are rebuilt from the cluster (README, "Reliability")."""

    day: Literal["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"] = Field(
        "SUNDAY",
        description="Day of the week (UTC) the maintenance window starts.")
    hour: Annotated[int, Field(ge=0, le=23)] = Field(
        3,
        description="Hour (UTC, 0-23) the one-hour maintenance window starts.")


class CacheConfig(Section):
    """Memorystore Redis for routing state and activity (AUTH and TLS always on)."""

    tier: Literal["BASIC", "STANDARD_HA"] = Field(
        "BASIC",
        description="Memorystore tier (STANDARD_HA adds a replica).")
    memory_size_gb: Annotated[int, Field(ge=1, le=300)] = Field(
        1,
        description="Redis memory in GB.")
    redis_version: Literal["REDIS_6_X", "REDIS_7_0", "REDIS_7_2"] = Field(
        "REDIS_7_2",
        description="Redis version.")
    maintenance_window: MaintenanceWindow = Field(
        default_factory=MaintenanceWindow,
        description="When Memorystore may do its weekly maintenance (default Sunday 03:00 UTC).")
    rdb_snapshot_period: Optional[Literal["ONE_HOUR", "SIX_HOURS", "TWELVE_HOURS",
                                          "TWENTY_FOUR_HOURS"]] = Field(
        None,
        description=("RDB snapshots (restored after maintenance or a failover); off by default: "
                     "sessions are rebuilt from the cluster, and a snapshot brings back an older view."))
