"""A Google service account that one Kubernetes service account may act as (Workload Identity)."""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.gcp.service_account import ServiceAccount, account_id


class WorkloadIdentity(pulumi.ComponentResource):
    """`sdfleet:gcp:WorkloadIdentity`: GSA + `roles/iam.workloadIdentityUser` for one KSA."""

    def __init__(self, name: str, prefix: str, purpose: str, project: str, namespace: str,
                 ksa_name: str, roles: tuple[str, ...] = (), *,
                 workload_pool: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        """`workload_pool` is the cluster's output (`GkeCluster.workload_pool`), never a name."""
        super().__init__("sdfleet:gcp:WorkloadIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = ServiceAccount(f"{name}", account_id(prefix, purpose),
                                      f"sdfleet {purpose} (pods of {namespace}/{ksa_name})",
                                      project, roles, opts=child)
        self.email = self.account.email
        self.member = self.account.member
        self.binding = gcp.serviceaccount.IAMMember(
            f"{name}-wi", service_account_id=self.account.account.name,
            role="roles/iam.workloadIdentityUser",
            # The pool exists only once the cluster does: taking it from the cluster's output
            # (not a name built from the project) orders this binding after the cluster.
            member=pulumi.Output.from_input(workload_pool).apply(
                lambda pool: f"serviceAccount:{pool}[{namespace}/{ksa_name}]"),
            opts=child)
        self.annotation = {"iam.gke.io/gcp-service-account": self.email}
        self.register_outputs({"email": self.email})
