"""A service account with exactly the project roles it needs, and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

# What every GKE node needs to run (GKE hardening guide, "least privilege service account").
NODE_ROLES = (
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/autoscaling.metricsWriter",
    # Image streaming (gcfsConfig) with a custom node service account needs Service Usage
    # Consumer in the project that holds the images (GKE docs, "Use Image streaming to pull
    # container images", requirements); pulling itself is artifactregistry.reader on the
    # platform's repository (components/gcp/registry.py).
    "roles/serviceusage.serviceUsageConsumer",
)


@dataclass(frozen=True)
class ServiceAccountArgs:
    account_id: str
    display_name: str
    project: str
    roles: tuple[str, ...] = ()


class ServiceAccount(pulumi.ComponentResource):
    """`sdfleet:gcp:ServiceAccount`: an account plus one IAMMember per project role."""

    def __init__(self, name: str, args: ServiceAccountArgs,
                 opts: pulumi.ResourceOptions | None = None):
        account_id, display_name, project, roles = args.account_id, args.display_name, args.project, args.roles
        super().__init__("sdfleet:gcp:ServiceAccount", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = gcp.serviceaccount.Account(
            f"{name}-sa", account_id=account_id, display_name=display_name, project=project,
            opts=child)
        self.email = self.account.email
        self.member = self.account.email.apply(lambda e: f"serviceAccount:{e}")
        self.bindings = [
            gcp.projects.IAMMember(f"{name}-{role.split('/')[-1].replace('.', '-').lower()}",
                                   project=project, role=role, member=self.member, opts=child)
            for role in roles
        ]
        self.register_outputs({"email": self.email})


def account_id(prefix: str, purpose: str) -> str:
    """Service account ids are 6-30 chars, lower case, start with a letter."""
    value = f"{prefix}-{purpose}"[:30].rstrip("-")
    return value if len(value) >= 6 else (value + "-sa")[:30]
