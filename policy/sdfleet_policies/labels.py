"""Cost-allocation labels and tags on every resource that costs money (advisory)."""

from __future__ import annotations

from typing import Any, Iterable

from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs

from .aws import SQS_QUEUE
from .define import ADVISORY, resource_policy, setting
from .gke import CLUSTER, NODE_POOL
from .gpu import EKS_NODE_GROUP
from .inputs import Unknown, as_json, mapping, read
from .memorystore import MEMORYSTORE_INSTANCE, REDIS_INSTANCE

# Where each cost-relevant resource type keeps its labels or tags.
LABEL_PATHS: dict[str, tuple[str, ...]] = {
    CLUSTER: ("resourceLabels",),
    NODE_POOL: ("nodeConfig", "resourceLabels"),
    "gcp:filestore/instance:Instance": ("labels",),
    REDIS_INSTANCE: ("labels",),
    MEMORYSTORE_INSTANCE: ("labels",),
    "gcp:cloudfunctionsv2/function:Function": ("labels",),
    "gcp:cloudfunctions/function:Function": ("labels",),
    "gcp:storage/bucket:Bucket": ("labels",),
    "gcp:compute/globalAddress:GlobalAddress": ("labels",),
    "gcp:compute/address:Address": ("labels",),
    "gcp:compute/instance:Instance": ("labels",),
    "gcp:artifactregistry/repository:Repository": ("labels",),
    "gcp:secretmanager/secret:Secret": ("labels",),
    "aws:eks/cluster:Cluster": ("tags",),
    EKS_NODE_GROUP: ("tags",),
    "aws:ec2/vpc:Vpc": ("tags",),
    "aws:ec2/natGateway:NatGateway": ("tags",),
    "aws:ec2/eip:Eip": ("tags",),
    "aws:s3/bucket:Bucket": ("tags",),
    "aws:s3/bucketV2:BucketV2": ("tags",),
    SQS_QUEUE: ("tags",),
    "aws:sns/topic:Topic": ("tags",),
    "aws:efs/fileSystem:FileSystem": ("tags",),
    "aws:apigateway/restApi:RestApi": ("tags",),
    "aws:apigateway/stage:Stage": ("tags",),
    "aws:lambda/function:Function": ("tags",),
    "aws:ec2/launchTemplate:LaunchTemplate": ("tags",),
    # Karpenter puts these tags on every GPU instance it launches.
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": ("spec", "tags"),
}


def _provider_defaults(args: ResourceValidationArgs) -> dict:
    provider = args.provider
    if provider is None:
        return {}
    labels = as_json(read(provider.props, "defaultLabels"))
    tags = as_json(read(provider.props, "defaultTags"))
    out = dict(labels) if isinstance(labels, dict) else {}
    if isinstance(tags, dict) and isinstance(tags.get("tags"), dict):
        out.update(tags["tags"])
    return out


def _check_cost_labels(type_: str, props: Any, args: ResourceValidationArgs) -> Iterable[str]:
    if type_.startswith("gcp:compute/") and read(props, "addressType") == "INTERNAL":
        return  # internal ranges (private services peering) cost nothing
    labels = read(props, *LABEL_PATHS[type_])
    if isinstance(labels, Unknown):
        return
    present = {**_provider_defaults(args), **mapping(labels)}
    required = setting(args.get_config(), "requiredKeys", lambda p: list((p.get("labels") or {}).keys()), [])
    missing = [k for k in required if k not in present]
    if not present:
        yield f"no cost-allocation {LABEL_PATHS[type_][-1]}"
    elif missing:
        yield f"cost-allocation {LABEL_PATHS[type_][-1]} lack {', '.join(missing)}"


POLICIES = [
    resource_policy(
        "cost-labels",
        "Cost-relevant resources carry the stack's cost-allocation labels or tags.",
        tuple(LABEL_PATHS), _check_cost_labels, level=ADVISORY,
        config_schema=PolicyConfigSchema(properties={
            "requiredKeys": {"type": "array", "items": {"type": "string"},
                             "description": "label/tag keys every such resource needs (default: "
                                            "the keys of the stack's sdfleet:platform.labels)"}})),
]
