"""The `aws` section: the EKS batch variant, in sections like the GCP side's."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from components.config.common import WebuiResources
from components.config.fields import Cidr, DnsLabel, Ec2InstanceType, ImageHost, Quantity, Section
from components.registries.frameworks import BATCH_FRAMEWORKS

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
