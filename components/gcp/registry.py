"""Artifact Registry for the platform's images; image references default to it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp


@dataclass(frozen=True)
class ImageRegistryArgs:
    project: str
    region: str
    labels: dict[str, str]
    readers: list[pulumi.Input[str]]


class ImageRegistry(pulumi.ComponentResource):
    """`sdfleet:gcp:ImageRegistry`: a Docker repository, readable by the node pools only."""

    def __init__(self, name: str, args: ImageRegistryArgs,
                 opts: pulumi.ResourceOptions | None = None):
        project, region, labels, readers = args.project, args.region, args.labels, args.readers
        super().__init__("sdfleet:gcp:ImageRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.repository = gcp.artifactregistry.Repository(
            f"{name}-images", repository_id=f"{name}-images", location=region, project=project,
            format="DOCKER", description="sdfleet images (webui, router, queue agent)",
            labels=labels, opts=child)
        for i, member in enumerate(readers):
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-reader-{i}", project=project, location=region,
                repository=self.repository.repository_id, role="roles/artifactregistry.reader",
                member=member, opts=child)
        self.path = f"{region}-docker.pkg.dev/{project}/{name}-images"
        self.register_outputs({"path": self.path})

    def image(self, image_name: str, tag: str) -> str:
        return f"{self.path}/{image_name}:{tag}"
