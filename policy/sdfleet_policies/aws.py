"""AWS: the EKS API endpoint restricted, S3 buckets private and encrypted, SQS queues with a
dead-letter queue."""

from __future__ import annotations

from typing import Any, Iterable

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
    StackValidationPolicy,
)

from .define import MANDATORY, resource_policy, setting
from .inputs import Unknown, items, read
from .network import is_internet

EKS_CLUSTER_TYPES = ("aws:eks/cluster:Cluster", "eks:index:Cluster")


def _check_eks_endpoint(type_: str, props: Any, args: ResourceValidationArgs) -> Iterable[str]:
    if type_ == "aws:eks/cluster:Cluster":
        public = read(props, "vpcConfig", "endpointPublicAccess", default=True)
        cidrs = read(props, "vpcConfig", "publicAccessCidrs")
    else:  # the pulumi-eks component takes the same settings at its top level
        public = read(props, "endpointPublicAccess", default=True)
        cidrs = read(props, "publicAccessCidrs")
    if public is False or isinstance(public, Unknown):
        return
    cidrs = [c for c in items(cidrs) if isinstance(c, str)]
    if not cidrs:
        yield ("public EKS API endpoint open to 0.0.0.0/0 (the provider default): make it private "
               "or list publicAccessCidrs")
        return
    for cidr in cidrs:
        if is_internet(cidr):
            yield f"public EKS API endpoint allows {cidr}"
    allowed = setting(args.get_config(), "allowedCidrs",
                       lambda p: ((p.get("aws") or {}).get("cluster") or {}).get("publicAccessCidrs"),
                       None)
    if allowed is not None:
        for cidr in cidrs:
            if cidr not in allowed:
                yield f"public EKS API endpoint allows {cidr}, which is not in the stack's publicAccessCidrs"


S3_BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ACCOUNT_PAB = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
S3_SSE_TYPES = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
_PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


def _attached_to(bucket: PolicyResource, resources: list[PolicyResource], types: tuple[str, ...]) -> list[PolicyResource]:
    """Resources of `types` that configure `bucket`: they depend on it or name it literally."""
    name = read(bucket.props, "bucket")
    out = []
    for r in resources:
        if r.resource_type not in types:
            continue
        target = read(r.props, "bucket")
        if any(d.urn == bucket.urn for d in r.dependencies) or (isinstance(name, str) and target == name):
            out.append(r)
    return out


def _validate_s3_public_access(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    account = [r for r in args.resources if r.resource_type == S3_ACCOUNT_PAB
               and all(read(r.props, f) is True for f in _PAB_FLAGS)]
    for bucket in args.resources:
        if bucket.resource_type not in S3_BUCKET_TYPES or account:
            continue
        blocks = _attached_to(bucket, args.resources, (S3_PAB,))
        if not blocks:
            report_violation(f"bucket {bucket.name} has no BucketPublicAccessBlock", bucket.urn)
            continue
        off = [f for f in _PAB_FLAGS if all(read(b.props, f) is not True for b in blocks)]
        if off:
            report_violation(f"bucket {bucket.name}: public access block leaves {', '.join(off)} off",
                             bucket.urn)


def _validate_s3_encryption(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in args.resources:
        if bucket.resource_type not in S3_BUCKET_TYPES:
            continue
        inline = read(bucket.props, "serverSideEncryptionConfiguration", "rule",
                      "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if inline in SSE_ALGORITHMS:
            continue
        configs = _attached_to(bucket, args.resources, S3_SSE_TYPES)
        algorithms = [read(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                      for c in configs for rule in items(read(c.props, "rules"))]
        if not any(a in SSE_ALGORITHMS or isinstance(a, Unknown) for a in algorithms):
            report_violation(f"bucket {bucket.name} has no server-side encryption configuration "
                             f"({'/'.join(SSE_ALGORITHMS)})", bucket.urn)


SQS_QUEUE = "aws:sqs/queue:Queue"
SQS_REDRIVE = "aws:sqs/redrivePolicy:RedrivePolicy"
SQS_REDRIVE_ALLOW = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"


def _validate_sqs_dlq(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every queue has a DLQ, except dead-letter queues themselves.

    A queue's redrive policy names its DLQ by ARN, unknown during preview: the link is the
    dependency. Which dependency is which comes from property dependencies (the engine sends
    them); without them (an offline plan records none) a RedrivePolicy resource counts for every
    queue it depends on and a RedriveAllowPolicy marks nothing.
    """
    queues = [r for r in args.resources if r.resource_type == SQS_QUEUE]
    queue_urns = {q.urn for q in queues}
    with_dlq: set[str] = set()
    dead_letter: set[str] = set()

    def prop_deps(r: PolicyResource, prop: str) -> set[str]:
        return {d.urn for d in (r.property_dependencies or {}).get(prop, [])} & queue_urns

    for q in queues:
        if read(q.props, "redrivePolicy") is not None:
            with_dlq.add(q.urn)
            dead_letter |= {d.urn for d in q.dependencies} & queue_urns
        if read(q.props, "redriveAllowPolicy") is not None:
            dead_letter.add(q.urn)
    for r in args.resources:
        if r.resource_type == SQS_REDRIVE:
            if r.property_dependencies:
                with_dlq |= prop_deps(r, "queueUrl")
                dead_letter |= prop_deps(r, "redrivePolicy")
            else:
                with_dlq |= {d.urn for d in r.dependencies} & queue_urns
        elif r.resource_type == SQS_REDRIVE_ALLOW:
            dead_letter |= prop_deps(r, "queueUrl")
    for q in queues:
        if q.urn not in with_dlq and q.urn not in dead_letter:
            report_violation(f"queue {q.name} has no dead-letter queue (redrivePolicy): a message "
                             "that keeps failing would be retried forever", q.urn)


POLICIES = [
    StackValidationPolicy(
        name="s3-public-access-blocked",
        description="S3 buckets block all public access.",
        validate=_validate_s3_public_access, enforcement_level=MANDATORY),
    StackValidationPolicy(
        name="s3-encrypted",
        description="S3 buckets have a server-side encryption configuration.",
        validate=_validate_s3_encryption, enforcement_level=MANDATORY),
    StackValidationPolicy(
        name="sqs-dead-letter-queue",
        description="SQS queues have a dead-letter queue.",
        validate=_validate_sqs_dlq, enforcement_level=MANDATORY),
    resource_policy(
        "eks-endpoint-restricted",
        "The EKS API endpoint is private or restricted to the listed CIDRs.",
        EKS_CLUSTER_TYPES, _check_eks_endpoint,
        config_schema=PolicyConfigSchema(properties={
            "allowedCidrs": {"type": "array", "items": {"type": "string"},
                             "description": "CIDRs the public endpoint may allow (default: the "
                                            "stack's sdfleet:platform.aws.cluster.publicAccessCidrs)"}})),
]
