"""Each WebUI image written to a Compute Engine disk image, for the GPU nodes' secondary boot disk.

With `images.preloadDisk`, once a WebUI image is in the registry one Cloud Build runs Google's
disk image builder (GoogleCloudPlatform/ai-on-gke `tools/gke-disk-image-builder`, at the commit
the config pins): it starts a temporary VM in the cluster's subnet, pulls the image onto a disk
with the VM's own account (a registry reader), and makes a disk image of it. GPU node pools that
run the image then start every node with that disk attached in CONTAINER_IMAGE_CACHE mode
(GKE docs, "Use secondary boot disks to preload data or container images"; image streaming,
which the nodes have, is required): the kubelet finds the image's layers on the node.

The disk image's name is a hash of what decides it (the image reference, the builder's commit,
the size), so an unchanged image never makes a new disk, and a new one gives new node pools.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
from pulumi_command import local

from components.config.images import PreloadDiskConfig
from components.gcp.image_builds import BUILD_SCRIPT, PERMISSION_ERRORS, staging_bucket
from components.gcp.registry import ImageRegistry
from components.gcp.service_account import ServiceAccount, ServiceAccountArgs, account_id

BUILDER_REPOSITORY = "https://github.com/GoogleCloudPlatform/ai-on-gke.git"
BUILDER_FOLDER = "tools/gke-disk-image-builder"
GIT_IMAGE = "gcr.io/cloud-builders/git"
# Docker Hub's official image through Google's mirror (no Docker Hub pull limits).
GO_IMAGE = "mirror.gcr.io/library/golang:1.23"
# Writing a 20-40 GB image to a disk and imaging it takes 15-30 minutes.
DISK_BUILD_TIMEOUT_SECONDS = 3600
# What the builder itself needs: make and delete its VM and disk, make the image; act as the
# VM's account (granted on that account only).
BUILDER_ROLES = ("roles/compute.instanceAdmin.v1", "roles/compute.storageAdmin")


def disk_image_name(prefix: str, image: str, reference: str, config: PreloadDiskConfig) -> str:
    """`<prefix>-<image>-<12 hex>`: a Compute Engine image name (lower-case, at most 63)."""
    digest = hashlib.sha256(json.dumps([reference, config.builder_ref, config.disk_size_gb])
                            .encode()).hexdigest()[:12]
    return f"{prefix}-{image}-{digest}"


def disk_build_config(reference: str, disk_image: str, config: PreloadDiskConfig, project: str,
                      zone: str, bucket: str, subnetwork: str, vm_account: str) -> dict:
    """The Cloud Build config that writes `reference` to the disk image `disk_image`."""
    builder = f"ai-on-gke/{BUILDER_FOLDER}"
    return {
        "steps": [
            {"name": GIT_IMAGE, "args": ["clone", "--filter=blob:none", BUILDER_REPOSITORY, "ai-on-gke"]},
            {"name": GIT_IMAGE, "args": ["-C", "ai-on-gke", "checkout", "--detach", config.builder_ref]},
            {"name": GO_IMAGE, "dir": builder, "args": [
                "go", "run", "./cli",
                f"--project-name={project}", f"--image-name={disk_image}", f"--zone={zone}",
                f"--gcs-path=gs://{bucket}/disk-images", f"--disk-size-gb={config.disk_size_gb}",
                f"--container-image={reference}",
                # The registry is private: the VM pulls with its own account's token.
                "--image-pull-auth=ServiceAccountToken",
                f"--subnet={subnetwork}", f"--service-account={vm_account}",
                f"--timeout={DISK_BUILD_TIMEOUT_SECONDS - 300}s"]},
        ],
        "timeout": f"{DISK_BUILD_TIMEOUT_SECONDS}s",
        "options": {"logging": "GCS_ONLY"},
    }


@dataclass(frozen=True)
class PreloadDisksArgs:
    config: PreloadDiskConfig
    images: dict[str, pulumi.Output[str]]     # WebUI image name -> its reference (after its build)
    project: str
    region: str
    zone: str
    prefix: str
    subnetwork: pulumi.Input[str]              # the subnet's self link: the builder VM runs there
    registry: ImageRegistry
    labels: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)


class PreloadDisks(pulumi.ComponentResource):
    """`sdfleet:gcp:PreloadDisks`: one disk image per WebUI image, made after its build."""

    def __init__(self, name: str, args: PreloadDisksArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:PreloadDisks", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project = args.project
        self.account = ServiceAccount(f"{name}-builder", ServiceAccountArgs(
                account_id(name, "builder"), "sdfleet disk images of the WebUI images (Cloud Build)",
                project, BUILDER_ROLES),
                opts=child)
        # The temporary VM pulls the image as this account: it may read the platform's
        # repository and write logs, nothing else.
        self.vm_account = ServiceAccount(f"{name}-vm", ServiceAccountArgs(
                account_id(name, "vm"), "sdfleet disk image writer VM",
                project, ("roles/logging.logWriter",)),
                opts=child)
        self.bucket = staging_bucket(name, project, args.region, args.labels, child)
        grants = [
            gcp.storage.BucketIAMMember(f"{name}-builder-uses-staging", bucket=self.bucket.name,
                                        role="roles/storage.admin", member=self.account.member,
                                        opts=child),
            gcp.storage.BucketIAMMember(f"{name}-vm-writes-staging", bucket=self.bucket.name,
                                        role="roles/storage.objectAdmin",
                                        member=self.vm_account.member, opts=child),
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-vm-pulls", project=project, location=args.region,
                repository=args.registry.repository.repository_id,
                role="roles/artifactregistry.reader", member=self.vm_account.member, opts=child),
            gcp.serviceaccount.IAMMember(
                f"{name}-builder-acts-as-vm", service_account_id=self.vm_account.account.name,
                role="roles/iam.serviceAccountUser", member=self.account.member, opts=child),
        ]
        after = pulumi.ResourceOptions(
            parent=self, depends_on=[*args.depends_on, *grants],
            custom_timeouts=pulumi.CustomTimeouts(create=f"{DISK_BUILD_TIMEOUT_SECONDS // 60 + 10}m",
                                                  update=f"{DISK_BUILD_TIMEOUT_SECONDS // 60 + 10}m"))
        self.disk_images: dict[str, pulumi.Output[str]] = {}
        for image, reference in args.images.items():
            def environment(values: list, image: str = image) -> dict:
                ref, bucket, subnet, vm_email, build_account = values
                disk = disk_image_name(args.prefix, image, ref, args.config)
                return {
                    "SDFLEET_IMAGE": disk, "SDFLEET_CONTEXT": "-",
                    "SDFLEET_PROJECT": project, "SDFLEET_REGION": args.region,
                    "SDFLEET_BUCKET": bucket, "SDFLEET_PERMISSION_ERRORS": PERMISSION_ERRORS,
                    "SDFLEET_BUILD_ACCOUNT": build_account,
                    "SDFLEET_BUILD_CONFIG": json.dumps(disk_build_config(
                        ref, disk, args.config, project, args.zone, bucket, subnet, vm_email),
                        sort_keys=True)}

            env = pulumi.Output.all(reference, self.bucket.name, args.subnetwork,
                                    self.vm_account.email, self.account.account.name).apply(environment)
            build = local.Command(
                f"{name}-{image}", create=BUILD_SCRIPT, logging="stdoutAndStderr",
                environment=env,
                # A new disk image name (a new image, builder or size) replaces the Command.
                triggers=[env.apply(lambda e: e["SDFLEET_IMAGE"])],
                opts=after)
            # Read back from the Command, so the node pools wait for the finished disk image.
            self.disk_images[image] = build.triggers.apply(lambda t: f"global/images/{t[0]}")
        self.register_outputs({"diskImages": self.disk_images})
