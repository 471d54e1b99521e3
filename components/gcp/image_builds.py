"""The platform's own images, built by Cloud Build from this repository during `pulumi up`.

Each image is one `command:local:Command` that runs `gcloud builds submit` on the image's
folder (components/images.py), keyed by the folder's content hash: the hash is the image tag
and the Command's trigger, so an unchanged image is never rebuilt and a changed one replaces
the Command (a new build, a new tag, a rolling update of whatever runs it). Workloads take the
reference from the Command (`ImageBuilds.reference`), so Pulumi creates no Deployment, Job or
Fleet before its image is in the registry. `images.prebuilt` replaces a build with a given
reference.

Builds run as their own service account (never the project's default compute or Cloud Build
account): it may read the uploaded sources and write build logs in one staging bucket, and
push to this platform's repository only. Base images come through the stack's own Docker Hub
mirror (an Artifact Registry remote repository, `<name>-docker-hub`), which the build account
may only read: Cloud Build's workers share addresses, and Docker Hub's anonymous limit answers
them `429 toomanyrequests`; the mirror pulls each digest from Docker Hub once. gcloud streams
the build's log while it waits, and pulumi-command passes it through (`logging:
stdoutAndStderr`), so a long WebUI build shows its progress in `pulumi up`.

Sources: Cloud Build docs, "Configure user-specified service accounts" (a build with its own
account must set a logs bucket or CLOUD_LOGGING_ONLY; `gcloud builds submit --service-account
--gcs-log-dir --gcs-source-staging-dir`); "Build configuration file schema" (`options.diskSizeGb`,
`machineType`, `timeout`, `images`); pulumi-command 1.2.1 `local.Command` (`triggers`,
`logging`, `dir`, `environment`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_gcp as gcp
from pulumi_command import local

from components.gcp.registry import ImageRegistry
from components.gcp.service_account import ServiceAccount, ServiceAccountArgs, account_id
from components.images import IMAGES, content_hash, mirrored_bases

# A WebUI image (CUDA, torch, a framework and its own installer) takes 20-40 minutes on an
# 8-vCPU builder and ~20 GB of layers; the router and the queue agent take a few minutes.
BUILD_TIMEOUT_SECONDS = 2 * 3600
BUILD_MACHINE = "E2_HIGHCPU_8"
BUILD_DISK_GB = 200
BUILDER = "gcr.io/cloud-builders/docker"
# What gcloud and Cloud Build print when a grant has not reached them yet (an extended regex).
PERMISSION_ERRORS = ("PERMISSION_DENIED|does not have [a-z.]+ access|caller does not have permission"
                     "|Permission '[a-zA-Z.]+' denied|does not have permission")

# Runs in the project's root (where Pulumi.yaml is) with the values below in its environment.
# SDFLEET_CONTEXT "-" submits no source (a build that fetches what it needs itself).
BUILD_SCRIPT = """set -eu
if [ "$SDFLEET_CONTEXT" = "-" ]; then
  set -- --no-source
elif [ -d "$SDFLEET_CONTEXT" ]; then
  set -- "$SDFLEET_CONTEXT"
else
  echo "sdfleet: no $SDFLEET_CONTEXT under $(pwd): run pulumi from the sdfleet project's directory" >&2
  exit 1
fi
config=$(mktemp)
log=$(mktemp)
trap 'rm -f "$config" "$log" "$log.rc"' EXIT
printf '%s' "$SDFLEET_BUILD_CONFIG" > "$config"
# The build account's grants are made in the same `pulumi up`; IAM takes about 2 minutes to
# apply them, sometimes 7 or more. A permission error before then is retried, nothing else is.
wait_seconds=${SDFLEET_IAM_WAIT_SECONDS:-600}
pause=${SDFLEET_IAM_RETRY_PAUSE:-30}
deadline=$(( $(date +%s) + wait_seconds ))
attempt=1
while :; do
  echo "sdfleet: building $SDFLEET_IMAGE from $SDFLEET_CONTEXT with Cloud Build (logs follow)"
  rm -f "$log.rc"
  { gcloud builds submit "$@" --project="$SDFLEET_PROJECT" --region="$SDFLEET_REGION" \
      --config="$config" --service-account="$SDFLEET_BUILD_ACCOUNT" \
      --gcs-source-staging-dir="gs://$SDFLEET_BUCKET/sources" \
      --gcs-log-dir="gs://$SDFLEET_BUCKET/logs" 2>&1 || echo "$?" > "$log.rc"; } | tee "$log"
  [ -f "$log.rc" ] || exit 0
  if ! grep -Eiq "$SDFLEET_PERMISSION_ERRORS" "$log"; then
    exit "$(cat "$log.rc")"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "sdfleet: Cloud Build still reports a permission error after $wait_seconds s; check that $SDFLEET_BUILD_ACCOUNT holds Storage Admin on gs://$SDFLEET_BUCKET and Artifact Registry Writer on the platform's repository, and that you may act as it (iam.serviceAccounts.actAs)" >&2
    exit "$(cat "$log.rc")"
  fi
  echo "sdfleet: permission denied (attempt $attempt): IAM grants made in this pulumi up take about 2 minutes to apply, sometimes more; retrying in $pause s (gives up after $wait_seconds s)" >&2
  attempt=$((attempt + 1))
  sleep "$pause"
done
"""


def build_config(image: str, name: str, mirror: str | None = None) -> dict:
    """The Cloud Build config (JSON is valid build-config YAML) of one image; `mirror` is the
    registry path its Docker Hub bases are pulled through."""
    source = IMAGES[name]
    args = ["build", "--tag", image, "--file", source.dockerfile]
    for key, value in sorted({**source.build_args, **mirrored_bases(name, mirror)}.items()):
        args += ["--build-arg", f"{key}={value}"]
    return {
        # The Dockerfiles use BuildKit (`RUN --mount=type=secret`, stages built only when
        # the target needs them); the docker builder's classic builder is its default
        # (docker/cli#4319), so BuildKit is asked for.
        "steps": [{"name": BUILDER, "args": [*args, "."], "env": ["DOCKER_BUILDKIT=1"]}],
        "images": [image],
        "timeout": f"{BUILD_TIMEOUT_SECONDS}s",
        "options": {"machineType": BUILD_MACHINE, "diskSizeGb": BUILD_DISK_GB,
                    "logging": "GCS_ONLY"},
    }


def staging_bucket(name: str, project: str, region: str, labels: dict[str, str],
                   opts: pulumi.ResourceOptions) -> gcp.storage.Bucket:
    """A private bucket for one builder's uploaded sources and logs; objects go after 30 days."""
    return gcp.storage.Bucket(
        f"{name}-staging", name=f"{project}-{name}-staging", location=region, project=project,
        uniform_bucket_level_access=True, public_access_prevention="enforced",
        force_destroy=True, labels=labels,
        lifecycle_rules=[gcp.storage.BucketLifecycleRuleArgs(
            action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
            condition=gcp.storage.BucketLifecycleRuleConditionArgs(age=30))],
        opts=opts)


@dataclass(frozen=True)
class ImageBuildArgs:
    """Which images the platform runs, which of them the deployer brings, and where to push."""

    images: list[str]                   # names from components/images.py
    prebuilt: dict[str, str]            # images.prebuilt: name -> full reference (not built)
    project: str
    region: str
    registry: ImageRegistry
    labels: dict[str, str]
    depends_on: list[pulumi.Resource] = field(default_factory=list)  # e.g. the enabled APIs


class ImageBuilds(pulumi.ComponentResource):
    """`sdfleet:gcp:ImageBuilds`: one Cloud Build per image the platform runs."""

    def __init__(self, name: str, args: ImageBuildArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:ImageBuilds", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        images, prebuilt, project, region = args.images, args.prebuilt, args.project, args.region
        registry, labels, depends_on = args.registry, args.labels, args.depends_on
        self.references: dict[str, pulumi.Output[str]] = {
            image: pulumi.Output.from_input(prebuilt[image]) for image in images if image in prebuilt}
        self.builds: dict[str, local.Command] = {}
        to_build = [image for image in images if image not in prebuilt]
        if not to_build:
            self.register_outputs({"references": self.references})
            return

        self.account = ServiceAccount(f"{name}-builder", ServiceAccountArgs(
                account_id(name, "builder"), "sdfleet image builds (Cloud Build)", project, ()), opts=child)
        self.bucket = staging_bucket(name, project, region, labels, child)
        # Read the uploaded sources and keep the build log in this bucket only. A build whose
        # own account writes logs to a user-created bucket needs Storage Admin on it (Cloud
        # Build docs, "Store and manage build logs": user-created bucket, "grant the Storage
        # Admin role to the service account you're using for builds").
        # Docker Hub through a remote repository of the project's own (pulled once per digest,
        # then served from the region); the build account reads it and nothing else.
        self.docker_hub = gcp.artifactregistry.Repository(
            f"{name}-docker-hub", repository_id=f"{name}-docker-hub", location=region,
            project=project, format="DOCKER", mode="REMOTE_REPOSITORY",
            description="sdfleet: Docker Hub base images for the image builds",
            remote_repository_config=gcp.artifactregistry.RepositoryRemoteRepositoryConfigArgs(
                description="Docker Hub",
                docker_repository=gcp.artifactregistry
                .RepositoryRemoteRepositoryConfigDockerRepositoryArgs(public_repository="DOCKER_HUB")),
            labels=labels, opts=pulumi.ResourceOptions(parent=self, depends_on=depends_on))
        self.mirror = f"{region}-docker.pkg.dev/{project}/{name}-docker-hub"
        grants = [
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-builder-pulls-bases", project=project, location=region,
                repository=self.docker_hub.repository_id, role="roles/artifactregistry.reader",
                member=self.account.member, opts=child),
            gcp.storage.BucketIAMMember(f"{name}-builder-uses-staging", bucket=self.bucket.name,
                                        role="roles/storage.admin",
                                        member=self.account.member, opts=child),
            # Push to this platform's repository only.
            gcp.artifactregistry.RepositoryIamMember(
                f"{name}-builder-pushes", project=project, location=region,
                repository=registry.repository.repository_id, role="roles/artifactregistry.writer",
                member=self.account.member, opts=child),
        ]
        after_grants = pulumi.ResourceOptions(
            parent=self, depends_on=[*depends_on, registry.repository, self.docker_hub, *grants],
            # Long builds get their time (the build's own timeout, plus the upload).
            custom_timeouts=pulumi.CustomTimeouts(create=f"{BUILD_TIMEOUT_SECONDS // 60 + 10}m",
                                                  update=f"{BUILD_TIMEOUT_SECONDS // 60 + 10}m"))
        for image in to_build:
            digest = content_hash(image)
            reference = f"{registry.path}/{image}:{digest}"
            build = local.Command(
                # Runs in the project's directory (where `pulumi up` runs the program), so the
                # context is relative and moving the checkout changes no input. No `update`
                # script: a changed trigger then replaces the Command, which runs `create`
                # (pulumi-command 1.2.1 `triggers`: "If the update command was provided the
                # resource will be updated, otherwise it will be replaced").
                f"{name}-{image}", create=BUILD_SCRIPT, logging="stdoutAndStderr",
                environment={
                    "SDFLEET_IMAGE": reference, "SDFLEET_CONTEXT": IMAGES[image].context,
                    "SDFLEET_PROJECT": project, "SDFLEET_REGION": region,
                    "SDFLEET_BUCKET": self.bucket.name,
                    "SDFLEET_PERMISSION_ERRORS": PERMISSION_ERRORS,
                    "SDFLEET_BUILD_ACCOUNT": self.account.account.name,
                    "SDFLEET_BUILD_CONFIG": json.dumps(build_config(reference, image, self.mirror),
                                                       sort_keys=True)},
                # A new content hash replaces the Command: that is the rebuild.
                triggers=[digest, reference],
                opts=after_grants)
            self.builds[image] = build
            # Read back from the Command, so every consumer depends on the finished build.
            self.references[image] = build.triggers.apply(lambda t: t[1])
        self.register_outputs({"references": self.references})

    def reference(self, image: str) -> pulumi.Output[str]:
        return self.references[image]
