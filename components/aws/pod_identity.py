"""An AWS identity for one Kubernetes service account, through EKS Pod Identity.

Every workload that calls AWS gets its own role whose trust is the Pod Identity service
and whose association names exactly one namespace and service account; nodes' roles carry
no workload permissions, so a pod without an association can do nothing in AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.tags import POD_IDENTITY_ACTIONS, POD_IDENTITY_PRINCIPAL, policy_json, trust


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    cluster_name: pulumi.Input[str]
    namespace: str
    service_account: str
    statements: list[dict[str, Any]]
    tags: dict[str, str]
    managed_policy_arns: tuple[str, ...] = ()


class WorkloadIdentity(pulumi.ComponentResource):
    """`sdfleet:aws:WorkloadIdentity`: role + inline policy + pod identity association."""

    def __init__(self, name: str, args: WorkloadIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-role", assume_role_policy=trust(POD_IDENTITY_PRINCIPAL, POD_IDENTITY_ACTIONS),
            description=f"sdfleet: {args.namespace}/{args.service_account} via EKS Pod Identity",
            tags=args.tags, opts=child)
        if args.statements:
            aws.iam.RolePolicy(f"{name}-policy", role=self.role.id,
                               policy=policy_json(args.statements), opts=child)
        for i, arn in enumerate(args.managed_policy_arns):
            aws.iam.RolePolicyAttachment(f"{name}-managed-{i}", role=self.role.name,
                                         policy_arn=arn, opts=child)
        self.association = aws.eks.PodIdentityAssociation(
            f"{name}-association", cluster_name=args.cluster_name, namespace=args.namespace,
            service_account=args.service_account, role_arn=self.role.arn, tags=args.tags, opts=child)
        self.register_outputs({"roleArn": self.role.arn})
