"""The `images` section: images the deployer brings, and the GPU nodes' preloaded image disk."""

from __future__ import annotations

from typing import Annotated, Optional

from pydantic import Field

from components.config.fields import Section


class PreloadDiskConfig(Section):
    """GKE secondary boot disks: each WebUI image is written to a disk image after it is
    built, and every GPU node of a pool that runs it starts with that disk attached, so the
    image is on the node before the pod asks for it (GKE docs, "Use secondary boot disks to
    preload data or container images")."""

    builder_ref: Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")] = Field(
        description=("The commit of GoogleCloudPlatform/ai-on-gke whose tools/gke-disk-image-builder "
                     "writes the disk image (a full 40-hex commit: the build is reproducible)."))
    disk_size_gb: Annotated[int, Field(ge=10, le=2000)] = Field(
        100,
        description="Size of the disk image in GB: larger than the WebUI images it holds.")


class ImagesConfig(Section):
    """Container images. Built by the stack (Cloud Build on GCP) unless given here."""
    prebuilt: dict[str, str] = Field(
        default_factory=dict,
        description=("Image name -> full reference of an image you built yourself, used instead of building "
                    "it."))
    preload_disk: Optional[PreloadDiskConfig] = Field(
        None,
        description=("GCP: preload each WebUI image on the GPU nodes' secondary boot disk (a new image "
                     "rolls the GPU pools); unset: nodes pull the image (streamed) on first use."))
    docker_hub_credential: Optional[Annotated[str, Field(
        pattern=r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:ecr-pullthroughcache/.+$")]] = Field(
        None,
        description=("AWS: ARN of a Secrets Manager secret (name starting ecr-pullthroughcache/, with "
                     "username and accessToken of a Docker Hub account) for an ECR pull-through cache "
                     "of Docker Hub: CodeBuild then pulls the images' bases through ECR. Unset: "
                     "CodeBuild pulls them from Docker Hub anonymously, which Docker Hub limits "
                     "(429 toomanyrequests) on CodeBuild's shared addresses. GCP stacks pull through an "
                     "Artifact Registry remote repository of Docker Hub and need no credential."))
