"""The config models: one section per component (`GpuPoolConfig` for a GPU node pool,
`CacheConfig` for Memorystore, ...), `PlatformConfig` for the whole `sdfleet:platform` key and
`StackConfig` for it with the provider keys. Structure, types and single-value rules only; the
rules that involve more than one field are in `components.config.rules`."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from components.config.versions import AGONES_CHART_VERSION, AGONES_KUBERNETES_MINORS
from components.registries.frameworks import BATCH_FRAMEWORKS, WEBUI_FRAMEWORKS
from components.config.budgets import BudgetsConfig, UsageExportConfig
from components.config.images import ImagesConfig
from components.config.monitoring import MonitoringConfig
from components.config.profiles import PeakHours, ProfileConfig, _profile_member
from components.config.fields import (Accelerator, Cidr, Cron, DnsLabel, Ec2InstanceType,
                                      GceMachineType, ImageHost, Quantity, Section, _download_url, _gpu_count, _hf_repo_id, _member,
                                      _relative_path, _revision)

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


# --- Fleet, culling, access, WebUI, models -------------------------------------------------------

class WebuiResources(Section):
    """What one WebUI container asks of its node: the GCP fleet's pods and each batch runtime's
    workers (one GPU each; the sidecar beside it is small)."""

    cpu: Quantity = Field(
        "4",
        description="CPU request of the WebUI container (Kubernetes quantity).")
    memory: Quantity = Field(
        "16Gi",
        description="Memory request and limit of the WebUI container (Kubernetes quantity).")
    # The WebUI's own scratch space (/scratch: its data folder, outputs, temp files).
    scratch_size: Quantity = Field(
        "50Gi",
        description="Size limit of the WebUI's scratch space (emptyDir at /scratch).")


class FleetConfig(WebuiResources):
    namespace: DnsLabel = Field(
        "sdfleet-webui",
        description="Kubernetes namespace of the WebUI game servers.")
    # The GPU pool the WebUI pods run on (name of an entry in gpuPools; default: the first).
    gpu_pool: Optional[str] = Field(
        None,
        description="The gpuPools entry the WebUI pods run on; default: the first.")
    buffer: Annotated[int, Field(ge=0, le=1000)] = Field(
        1,
        description="Ready (warm) WebUI pods to keep beyond the allocated ones.")
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Fewest game servers; 0 or at least every buffer (Agones rule).")
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = Field(
        8,
        description="Most game servers (people at once plus the buffer).")
    peak_hours: Optional[PeakHours] = Field(
        None,
        description="A larger buffer in working hours (Agones scheduled autoscaling).")
    # Low-priority pods that keep GPU nodes up for the next person (0: none).
    placeholders: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Low-priority pods that keep GPU nodes up for the next person (0: none).")


class CullingConfig(Section):
    idle_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = Field(
        30,
        description="Shut a session down after this many minutes without activity.")
    max_session_hours: Annotated[int, Field(ge=1, le=7 * 24)] = Field(
        8,
        description="Shut a session down after this many hours, active or not.")
    orphan_grace_minutes: Annotated[int, Field(ge=1, le=120)] = Field(
        5,
        description="How long an allocated pod may have no mapping before it is shut down.")
    schedule: Cron = Field(
        "* * * * *",
        description="When the culler runs (Cloud Scheduler, five-field unix cron).")
    warn_minutes: Annotated[int, Field(ge=1, le=60)] = Field(
        10,
        description="The WebUI page warns this many minutes before a session ends (idle, maximum age).")



class AccessConfig(Section):
    """Who may open the platform (IAP) and under which name.

    IAP signs people in with an OAuth client. Without `oauthClientId` it uses the
    Google-managed client, which admits only accounts of the project's own organization
    (IAP docs, "Customize an OAuth configuration for IAP": "Google-managed OAuth clients
    restrict access to users within the same organization"); then `organizationDomain` names
    that organization and every member must belong to it. People from outside need a custom
    OAuth client: its id here, its secret in the Pulumi secret `sdfleet:iapOauthClientSecret`.
    """

    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")] = Field(
        description="The platform's host name; the Google-managed certificate is issued for it.")
    members: Annotated[list[Annotated[str, AfterValidator(_member)]], Field(min_length=1)] = Field(
        description="Who may sign in through IAP: user:, group:, serviceAccount: or domain: members.")
    organization_domain: Optional[Annotated[str, Field( pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")]] = Field(
        None,
        description=("The organization whose accounts IAP's Google-managed OAuth client admits; every member"
                    " must belong to it. Required unless oauthClientId is set."))
    # An OAuth 2.0 web client id (`<number>-<id>.apps.googleusercontent.com`).
    oauth_client_id: Optional[Annotated[str, Field( pattern=r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$")]] = Field(
        None,
        description=("A custom OAuth client for IAP (`<number>-<id>.apps.googleusercontent.com`), to admit "
                    "people from outside the organization; its secret goes in sdfleet:iapOauthClientSecret."))
    admins: list[Annotated[str, AfterValidator(_profile_member)]] = Field(
        default_factory=list,
        description=("Who sees /_sdfleet/admin (running sessions, usage, budgets) and may end a "
                     "session: user:, group: or domain: members."))

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backendServiceId" in data:
            raise ValueError("access.backendServiceId was removed: the stack now makes the "
                             "backend service itself, so the IAP audience is known in the same "
                             "`pulumi up`; delete the key")
        return data



class WebuiConfig(Section):
    framework: Literal[WEBUI_FRAMEWORKS] = Field(
        "automatic1111",
        description="The WebUI every person's pod runs.")
    # The AWS variant's ECR tag; GCP stacks tag each image by its content hash (images.py).
    image_tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] = Field(
        "v1",
        description="Tag of the images an AWS stack pushes to ECR (GCP stacks tag images by content hash).")
    router_replicas: Annotated[int, Field(ge=2, le=20)] = Field(
        3,
        description="Router pods (at least 2, behind a PodDisruptionBudget).")
    request_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        3600,
        description="How long the router waits on a WebUI request (a generation can run long).")
    max_upload_mb: Annotated[int, Field(ge=1, le=4096)] = Field(
        200,
        description="Largest request body the router accepts, in MB.")

    @model_validator(mode="before")
    @classmethod
    def _moved_image_keys(cls, data: Any) -> Any:
        moved = {"image": "webui-<framework>", "routerImage": "router"}
        for key, image in moved.items():
            if isinstance(data, dict) and key in data:
                raise ValueError(f"webui.{key} moved: set images.prebuilt.{image} to the full "
                                 "reference instead (or leave it out and the stack builds it)")
        return data


class ModelSpec(Section):
    """One model for the shared store (docs/contracts.md section 6)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")] = Field(
        description="The model's name in the model list (unique).")
    # Optional for CivitAI entries only: CivitAI's own type decides the folder.
    kind: Optional[Literal["checkpoint", "vae", "lora", "controlnet", "embedding", "upscaler", "extension"]] = Field(
        None,
        description=("Which folder the model goes to; optional for CivitAI entries only (CivitAI's type "
                    "decides)."))
    source: Literal["civitai", "url", "huggingface"] = Field(
        description="Where the model comes from.")
    civitai_version_id: Optional[Annotated[int, Field(ge=1)]] = Field(
        None,
        description="The CivitAI model version id (source civitai).")
    url: Optional[Annotated[str, AfterValidator(_download_url)]] = Field(
        None,
        description="An https URL without credentials (source url).")
    repo: Optional[Annotated[str, AfterValidator(_hf_repo_id)]] = Field(
        None,
        description="A Hugging Face repo id `<owner>/<name>` (source huggingface).")
    file: Optional[Annotated[str, AfterValidator(_relative_path)]] = Field(
        None,
        description="The file's path inside the repo (source huggingface).")
    revision: Optional[Annotated[str, AfterValidator(_revision)]] = Field(
        None,
        description="A branch, tag or commit of the repo; an extension needs a full 40-hex commit.")
    sha256: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        None,
        description="Expected SHA-256 of the file (64 hex); verified after download.")
    required: bool = Field(True, description="Fail the model sync if this model cannot be fetched.")


class ModelsConfig(Section):
    default_checkpoint: Optional[str] = Field(
        None,
        description="The checkpoint a WebUI loads first (a name of a checkpoint in items).")
    items: list[ModelSpec] = Field(
        default_factory=list,
        description="Models the model sync Job puts on the shared store.")


class LimitsConfig(Section):
    """Caps the policy pack enforces at preview time (the runtime GPU-hour quota is `budgets`)."""

    max_gpu_nodes: Annotated[int, Field(ge=0, le=10000)] = Field(
        16,
        description="Most GPU nodes the stack may be able to run; the policy pack refuses more.")


# --- AWS (EKS batch variant) ----------------------------------------------------------------------

# A queue's visibility timeout is the job timeout plus this margin (upload of results, the
# completion notice, the agent's own start), and SQS allows at most 12 hours.
AWS_VISIBILITY_MARGIN_SECONDS = 300
SQS_MAX_VISIBILITY_SECONDS = 43200


# The WebUIs a batch runtime can drive: the agent speaks A1111's /sdapi/v1 API or ComfyUI's
# /prompt + /history + /view API (images/queue-agent/sdfleet_agent/webui.py, comfyui.py).


class AwsRuntimeConfig(WebuiResources):
    """One batch runtime: a queue, a KEDA-scaled workload and its WebUI API image."""

    name: DnsLabel = Field(
        description="The runtime's name (a DNS label): its queue, workload and the `runtime` of a job.")
    # Unset: sized to fill one GPU of the smallest node of every gpu.families entry
    # (components/config/aws_instances.py); asking more makes Karpenter launch a bigger node.
    cpu: Optional[Quantity] = Field(
        None,
        description=("CPU request of the WebUI container; default: what the smallest node of each "
                     "gpu.families entry leaves after the system's and the agent's share."))
    memory: Optional[Quantity] = Field(
        None,
        description=("Memory request and limit of the WebUI container; default: what the smallest "
                     "node of each gpu.families entry leaves after the system's and the agent's share."))
    # Which WebUI runs beside the agent: decides the image and the API the agent speaks.
    framework: Literal[BATCH_FRAMEWORKS] = Field(
        "automatic1111",
        description="The WebUI beside the agent; decides the image and the API the agent drives.")
    mode: Literal["scaledjob", "scaledobject"] = Field(
        "scaledjob",
        description=("scaledjob: one Kubernetes Job per message; scaledobject: a Deployment of long-running "
                    "agents."))
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = Field(
        4,
        description="Most workers (Jobs or pods) at once.")
    activation_queue_length: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Messages waiting before KEDA scales from zero.")
    queue_length_per_replica: Annotated[int, Field(ge=1, le=1000)] = Field(
        1,
        description="Messages per worker KEDA aims for.")


class AwsNetworkConfig(Section):
    """The VPC of a batch stack."""

    vpc_cidr: Cidr = Field(
        "10.40.0.0/16", description="The VPC's range (a /20 or larger): split into one private "
        "node subnet per zone (a quarter each) and one small public subnet per zone.")
    zone_count: Annotated[int, Field(ge=2, le=3)] = Field(
        3, description="Availability zones the subnets, NAT gateways and nodes spread over.")

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_fits_six_subnets(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen > 20:
            raise ValueError("the VPC needs at least a /20 (three node subnets and three public "
                             "/24s), e.g. 10.40.0.0/16")
        return value


class AwsClusterConfig(Section):
    """The EKS cluster and its always-on system node group."""

    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = Field(
        "1.33", description="EKS Kubernetes version, `1.<minor>`.")
    public_access_cidrs: list[Cidr] = Field(
        default_factory=list, description="Who may reach the EKS API endpoint from the "
        "internet (a /8 or narrower each); empty keeps the endpoint private only.")
    system_instance_type: Ec2InstanceType = Field(
        "m6i.large", description="Instance type of the system node group (Karpenter, KEDA, "
        "CoreDNS).")
    system_nodes: Annotated[int, Field(ge=1, le=20)] = Field(
        2, description="Size of the system node group.")


class AwsGpuConfig(Section):
    """GPU nodes, launched on demand by Karpenter (Spot first, On-Demand fallback)."""

    families: Annotated[list[Literal["g4dn", "g5", "g6", "g6e", "p3", "p4d"]],
                        Field(min_length=1)] = Field(
        ["g5", "g6"], description="EC2 instance families Karpenter may launch for GPU work.")
    limit: Annotated[int, Field(ge=1, le=1000)] = Field(
        8, description="Most GPUs the GPU NodePool may hold at once (its `limits`).")
    time_slicing_replicas: Optional[Annotated[int, Field(ge=2, le=48)]] = Field(
        None, description="Not supported with Karpenter, which sizes nodes by physical GPUs "
        "(kubernetes-sigs/karpenter#729); leave unset (one pod per GPU).")


class AwsJobsConfig(Section):
    """How jobs are queued, retried and kept."""

    timeout_seconds: Annotated[int, Field(ge=30, le=43200)] = Field(
        900, description="Longest a job may run; the queues' visibility timeout is this plus "
        "a margin, within SQS's 12 hours.")
    max_receive_count: Annotated[int, Field(ge=1, le=100)] = Field(
        3, description="Tries of a message before it goes to its runtime's dead-letter queue.")
    results_expiry_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        30, description="Days results and uploads stay in the results bucket.")
    alert_email: Optional[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]] = Field(
        None, description=("Email address the queues' alarms are sent to (an SNS subscription the "
                           "address confirms); unset: the alarms show in CloudWatch only."))


class AwsApiConfig(Section):
    """The job API (API Gateway with an API key, and the submit function's limits)."""

    rate_limit: Annotated[float, Field(gt=0, le=10000)] = Field(
        5, description="Steady requests per second per API key (usage plan throttle).")
    burst_limit: Annotated[int, Field(ge=1, le=5000)] = Field(
        10, description="Request burst per API key (usage plan throttle).")
    quota_per_day: Annotated[int, Field(ge=1)] = Field(
        5000, description="Requests per API key per day (usage plan quota).")
    allowed_image_hosts: list[ImageHost] = Field(
        default_factory=list, description="Hosts a job's init image may be fetched from "
        "(bare lowercase host names); empty allows only the stack's own uploads.")
    max_image_side: Annotated[int, Field(ge=256, le=4096)] = Field(
        1536, description="Largest width or height, in pixels, a job may ask for.")
    max_steps: Annotated[int, Field(ge=1, le=500)] = Field(
        80, description="Most sampling steps a job may ask for.")
    max_batch: Annotated[int, Field(ge=1, le=16)] = Field(
        4, description="Most images one job may ask for.")


# Keys of the flat `aws` section before it was split -> where they are now.
AWS_MOVED_KEYS = {
    "vpcCidr": "network.vpcCidr", "zoneCount": "network.zoneCount",
    "kubernetesVersion": "cluster.kubernetesVersion",
    "publicAccessCidrs": "cluster.publicAccessCidrs",
    "systemInstanceType": "cluster.systemInstanceType", "systemNodes": "cluster.systemNodes",
    "gpuFamilies": "gpu.families", "gpuLimit": "gpu.limit",
    "timeSlicingReplicas": "gpu.timeSlicingReplicas",
    "jobTimeoutSeconds": "jobs.timeoutSeconds", "maxReceiveCount": "jobs.maxReceiveCount",
    "resultsExpiryDays": "jobs.resultsExpiryDays",
    "apiRateLimit": "api.rateLimit", "apiBurstLimit": "api.burstLimit",
    "apiQuotaPerDay": "api.quotaPerDay", "allowedImageHosts": "api.allowedImageHosts",
    "maxImageSide": "api.maxImageSide", "maxSteps": "api.maxSteps", "maxBatch": "api.maxBatch",
}


class AwsConfig(Section):
    """The EKS batch variant (`cloud: aws`), in sections like the GCP side's."""

    network: AwsNetworkConfig = Field(default_factory=AwsNetworkConfig,
                                      description="The VPC.")
    cluster: AwsClusterConfig = Field(default_factory=AwsClusterConfig,
                                      description="The EKS cluster and its system nodes.")
    gpu: AwsGpuConfig = Field(default_factory=AwsGpuConfig,
                              description="GPU nodes from Karpenter.")
    runtimes: Annotated[list[AwsRuntimeConfig], Field(min_length=1)] = Field(
        default_factory=lambda: [AwsRuntimeConfig(name="sdwebui")],
        description="The batch runtimes: one queue and one KEDA-scaled workload each.")
    jobs: AwsJobsConfig = Field(default_factory=AwsJobsConfig,
                                description="Job timeout, retries and how long results stay.")
    api: AwsApiConfig = Field(default_factory=AwsApiConfig,
                              description="The job API's limits.")

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        moved = [key for key in AWS_MOVED_KEYS if isinstance(data, dict) and key in data]
        if moved:
            raise ValueError("the aws section is split into network, cluster, gpu, runtimes, "
                             "jobs and api: move " + ", ".join(
                                 f"aws.{key} to aws.{AWS_MOVED_KEYS[key]}" for key in moved))
        return data


class PlatformConfig(Section):
    cloud: Literal["gcp", "aws"] = Field(
        description="gcp: the interactive platform on GKE; aws: the EKS batch variant.")
    preflight: bool = Field(
        True,
        description=("Run `make preflight`'s checks (GPU quota, machine types, APIs, Spot role, ...) as "
                     "the first step of `pulumi up`; false skips them."))
    name_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")] = Field(
        "sdfleet",
        description="Prefix of resource names.")
    # Cost-allocation labels put on every resource that takes labels.
    labels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")], Annotated[str, Field(pattern=r"^[a-z0-9_-]{0,63}$")]] = Field(
        default_factory=lambda: {"app": "sdfleet"},
        description="Cost-allocation labels put on every resource that takes labels.")
    network: NetworkConfig = Field(NetworkConfig(), description="GCP: the VPC ranges.")
    cluster: ClusterConfig = Field(ClusterConfig(), description="GCP: the GKE cluster.")
    system_pool: SystemPoolConfig = Field(
        SystemPoolConfig(),
        description="GCP: the always-on node pool for the router, Agones and system pods.")
    gpu_pools: list[GpuPoolConfig] = Field(
        default_factory=list,
        description="GCP: one autoscaled node pool per GPU type (at least one).")
    storage: StorageConfig = Field(
        StorageConfig(),
        description="GCP: the Filestore share for models and people's folders.")
    cache: CacheConfig = Field(
        CacheConfig(),
        description="GCP: the Memorystore Redis for routing and activity.")
    fleet: FleetConfig = Field(
        FleetConfig(),
        description="GCP: the WebUI fleet (warm buffer, limits, pod size).")
    culling: CullingConfig = Field(
        CullingConfig(),
        description="GCP: when idle and long sessions end.")
    access: Optional[AccessConfig] = Field(
        None,
        description="GCP: who may sign in through IAP, and the platform's domain (required).")
    webui: WebuiConfig = Field(
        WebuiConfig(),
        description="The WebUI framework and the router's limits.")
    budgets: Optional[BudgetsConfig] = Field(
        None,
        description="GCP: GPU-hours per person per month, enforced when sessions start and end.")
    usage_export: UsageExportConfig = Field(
        default_factory=UsageExportConfig,
        description="GCP: ended sessions copied to BigQuery every day (a table partitioned by day).")
    profiles: list[ProfileConfig] = Field(
        default_factory=list,
        description=("GCP: what people may start (a framework on a GPU pool) and who may; "
                     "empty: one profile from webui.framework and the fleet section."))
    images: ImagesConfig = Field(
        default_factory=ImagesConfig,
        description="Container images: built by the stack unless given here.")
    models: ModelsConfig = Field(ModelsConfig(), description="The models on the shared store.")
    monitoring: MonitoringConfig = Field(
        default_factory=MonitoringConfig,
        description="GCP: the operators' metrics, dashboard and alerts.")
    limits: LimitsConfig = Field(
        LimitsConfig(),
        description="Caps the policy pack enforces at preview time (budgets: the GPU-hours people may use).")
    aws: Optional[AwsConfig] = Field(
        None,
        description="AWS: the EKS batch variant (required with cloud: aws).")

    @model_validator(mode="before")
    @classmethod
    def _renamed_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and "budget" in data:
            raise ValueError("budget was renamed limits (the preview-time caps, e.g. "
                             "limits.maxGpuNodes); `budgets` is the GPU-hours people may use")
        return data

    def gpu_pool(self, name: str) -> GpuPoolConfig:
        return next(p for p in self.gpu_pools if p.name == name)

    @property
    def effective_profiles(self):
        """The profiles every component reads (the implicit one when none are configured)."""
        from components.config.profiles import effective_profiles
        return effective_profiles(self)

    @property
    def fleet_pool(self) -> GpuPoolConfig:
        return self.gpu_pool(self.fleet.gpu_pool) if self.fleet.gpu_pool else self.gpu_pools[0]


@dataclass(frozen=True)
class StackSecrets:
    """The stack's secret keys (`SECRET_KEYS`), read once by the loader as Pulumi secrets and
    passed to the components that need them; None where the key is not set."""

    civitai_token: Any = None
    huggingface_token: Any = None
    iap_oauth_client_secret: Any = None


class StackConfig(BaseModel):
    """The validated platform plus the provider keys and secrets it depends on."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    platform: PlatformConfig
    stack: str
    gcp_project: Optional[str] = None
    gcp_region: Optional[str] = None
    aws_region: Optional[str] = None
    secrets: StackSecrets = Field(default_factory=StackSecrets)


# Sections only a GCP interactive platform reads (field names of PlatformConfig).
GCP_SECTIONS = frozenset({"network", "cluster", "system_pool", "gpu_pools", "storage", "cache",
                          "fleet", "culling", "access", "profiles", "budgets", "usage_export",
                          "monitoring"})
