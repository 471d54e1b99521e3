"""The Google APIs a GCP platform uses, enabled on the project (never disabled on destroy:
other things in the project may rely on them)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

SERVICES = (
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    "servicenetworking.googleapis.com",
    "file.googleapis.com",
    "redis.googleapis.com",
    "artifactregistry.googleapis.com",
    "secretmanager.googleapis.com",
    "cloudfunctions.googleapis.com",
    "run.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudscheduler.googleapis.com",
    "vpcaccess.googleapis.com",
    "iap.googleapis.com",
    # Image streaming (gcfsConfig on the node pools) needs the Container File System API
    # (GKE docs, "Use Image streaming to pull container images": requirements).
    "containerfilesystem.googleapis.com",
    # The project number (for the IAP audience) comes from the provider's getProject, which
    # reads the project through the Cloud Resource Manager API (v1 `projects.get`); it is not
    # on by default in a new project.
    "cloudresourcemanager.googleapis.com",
)
# The allocator checks group membership (profiles admitted by `group:`) through the Cloud
# Identity Groups API, as its own service account.
GROUPS_API = "cloudidentity.googleapis.com"


@dataclass(frozen=True)
class ProjectApisArgs:
    project: str
    extra: tuple[str, ...] = ()


class ProjectApis(pulumi.ComponentResource):
    """`sdfleet:gcp:ProjectApis`."""

    def __init__(self, name: str, args: ProjectApisArgs,
                 opts: pulumi.ResourceOptions | None = None):
        project, extra = args.project, args.extra
        super().__init__("sdfleet:gcp:ProjectApis", name, None, opts)
        self.by_name = {
            svc: gcp.projects.Service(f"{name}-{svc.split('.')[0]}", project=project, service=svc,
                                      disable_on_destroy=False, disable_dependent_services=False,
                                      opts=pulumi.ResourceOptions(parent=self))
            for svc in (*SERVICES, *extra)
        }
        self.services = list(self.by_name.values())
        self.register_outputs({})
