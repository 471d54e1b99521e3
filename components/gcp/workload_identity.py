"""A Google service account that one Kubernetes service account may act as (Workload Identity)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.gcp.service_account import ServiceAccount, ServiceAccountArgs, account_id


@dataclass(frozen=True)
class WorkloadIdentityArgs:
    prefix: str
    purpose: str
    project: str
    namespace: str
    ksa_name: str
    workload_pool: pulumi.Input[str]
    roles: tuple[str, ...] = ()


class WorkloadIdentity(pulumi.ComponentResource):
    """`sdfleet:gcp:WorkloadIdentity`: GSA + `roles/iam.workloadIdentityUser` for one KSA."""

    def __init__(self, name: str, args: WorkloadIdentityArgs,
                 opts: pulumi.ResourceOptions | None = None):
        """`workload_pool` is the cluster's output (`GkeCluster.workload_pool`), never a name."""
        super().__init__("sdfleet:gcp:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = ServiceAccount(f"{name}", ServiceAccountArgs(
                account_id(args.prefix, args.purpose), f"sdfleet {args.purpose} (pods of {args.namespace}/{args.ksa_name})",
                args.project, args.roles),
                opts=child)
        self.email = self.account.email
        self.member = self.account.member
        self.binding = gcp.serviceaccount.IAMMember(
            f"{name}-wi", service_account_id=self.account.account.name,
            role="roles/iam.workloadIdentityUser",
            # The pool exists only once the cluster does: taking it from the cluster's output
            # (not a name built from the project) orders this binding after the cluster.
            member=pulumi.Output.from_input(args.workload_pool).apply(
                lambda pool: f"serviceAccount:{pool}[{args.namespace}/{args.ksa_name}]"),
            opts=child)
        self.annotation = {"iam.gke.io/gcp-service-account": self.email}
        self.register_outputs({"email": self.email})
