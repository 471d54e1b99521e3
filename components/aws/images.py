"""The batch stack's container images: ECR repositories and CodeBuild builds, from the program.

Why CodeBuild, started by the deployer's own AWS CLI (pulumi-command): no container engine is
needed where `pulumi up` runs (the WebUI images are CUDA + PyTorch, tens of GB to build), and
the deployer already has the AWS CLI, since the kubeconfig mints its tokens with
`aws eks get-token`. The build runs in AWS, next to ECR; `pulumi up` waits for it and fails
with CodeBuild's status and log link if it fails.

- Repositories: scan on push, IMMUTABLE tags (a tag always names the same bytes), a lifecycle
  policy that keeps the last RETAINED_IMAGES images, encryption at rest (AES256 default).
- Tags are `c-<content hash>` (components/images.py): an unchanged image folder is the same
  tag, so nothing is rebuilt; a changed one is a new tag, so the workloads roll.
- A build is skipped when the tag already exists (a rerun after a partial failure).
- Every workload takes its image reference from the build's output, so no workload is
  awaited before its image exists.
- `images.prebuilt` (config) replaces the repository and build of the images it names.
- Base images: with `images.dockerHubCredential`, an ECR pull-through cache of Docker Hub
  (`<name>-docker-hub/...` in the stack's registry) serves the Dockerfiles' bases, so builds
  never meet Docker Hub's anonymous pull limit (429 on CodeBuild's shared addresses).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
from pulumi_command import local

from components.aws.tags import allow, policy_json, tags_for, trust
from components.images import IMAGES, ROOT, base_images, content_hash, mirrored_bases

RETAINED_IMAGES = 10
BUILD_TIMEOUT_MINUTES = 120
BUILD_SCRIPT = Path(__file__).with_name("build_image.sh")
# CodeBuild's curated Ubuntu image with Docker (privileged mode builds images), AWS docs
# "Docker images provided by CodeBuild": aws/codebuild/standard:7.0.
BUILD_IMAGE = "aws/codebuild/standard:7.0"
# Large: 15 GB memory, 8 vCPUs, 128 GB disk; PyTorch wheels and CUDA layers need the disk.
BUILD_COMPUTE = "BUILD_GENERAL1_LARGE"
SOURCE_RETENTION_DAYS = 30

BUILDSPEC = """version: 0.2
phases:
  pre_build:
    on-failure: ABORT
    commands:
      - aws ecr get-login-password --region "$AWS_REGION" | docker login --username AWS --password-stdin "${IMAGE_URI%%/*}"
  build:
    on-failure: ABORT
    commands:
      - DOCKER_BUILDKIT=1 docker build --file "$DOCKERFILE" $BUILD_ARGS --tag "$IMAGE_URI" .
  post_build:
    commands:
      - docker push "$IMAGE_URI"
"""


def image_tag(name: str) -> str:
    return f"c-{content_hash(name)}"


def lifecycle_policy() -> str:
    return json.dumps({"rules": [{
        "rulePriority": 1, "description": f"keep the last {RETAINED_IMAGES} images",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan",
                      "countNumber": RETAINED_IMAGES},
        "action": {"type": "expire"}}]})


def build_args_flags(name: str, mirror: str | None = None) -> str:
    """`--build-arg` flags of one image; `mirror` is the registry path its Docker Hub bases
    are pulled through."""
    args = {**IMAGES[name].build_args, **mirrored_bases(name, mirror)}
    return " ".join(f"--build-arg {k}={v}" for k, v in sorted(args.items()))


# ECR's documented upstream address of Docker Hub for pull-through cache rules.
DOCKER_HUB_UPSTREAM = "registry-1.docker.io"


@dataclass(frozen=True)
class ImageBuildsArgs:
    needed: list[str]
    prebuilt: dict[str, str]
    region: str
    account: pulumi.Input[str]
    labels: dict[str, str]
    docker_hub_credential: str | None = None   # images.dockerHubCredential (a secret's ARN)


class ImageBuilds(pulumi.ComponentResource):
    """`sdfleet:aws:ImageBuilds`: for each image the stack needs, a prebuilt reference or an ECR
    repository and a CodeBuild build; `references[name]` is what workloads use."""

    def __init__(self, name: str, args: ImageBuildsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:ImageBuilds", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.references: dict[str, pulumi.Output[str]] = {
            image: pulumi.Output.from_input(args.prebuilt[image]) for image in args.needed
            if image in args.prebuilt}
        to_build = [image for image in args.needed if image not in args.prebuilt]
        self.repositories: dict[str, aws.ecr.Repository] = {}
        if not to_build:
            self.register_outputs({})
            return

        for image in to_build:
            repository = aws.ecr.Repository(
                f"{name}-{image}", name=f"{name}/{image}", image_tag_mutability="IMMUTABLE",
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "AES256"}],
                force_delete=False, tags=tags_for(args.labels, f"{name}/{image}"), opts=child)
            aws.ecr.LifecyclePolicy(f"{name}-{image}", repository=repository.name,
                                    policy=lifecycle_policy(), opts=child)
            self.repositories[image] = repository

        registry = pulumi.Output.format("{0}.dkr.ecr.{1}.amazonaws.com", args.account, args.region)
        mirror_prefix = f"{name}-docker-hub"
        mirror_arns: list[pulumi.Output[str]] = []
        mirror_rules: list[pulumi.Resource] = []
        if args.docker_hub_credential:
            mirror_rules.append(aws.ecr.PullThroughCacheRule(
                f"{name}-docker-hub", ecr_repository_prefix=mirror_prefix,
                upstream_registry_url=DOCKER_HUB_UPSTREAM,
                credential_arn=args.docker_hub_credential, opts=child))
            mirror_arns = [pulumi.Output.format("arn:aws:ecr:{0}:{1}:repository/{2}/*", args.region,
                                                args.account, mirror_prefix)]
        else:
            pulumi.log.warn(
                "images.dockerHubCredential is not set: CodeBuild pulls the images' bases "
                f"({', '.join(sorted({r for i in to_build for r in base_images(i).values()}))}) from Docker Hub "
                "anonymously, and Docker Hub answers CodeBuild's shared addresses with "
                "429 toomanyrequests at times; set it to pull through an ECR cache", self)

        # Build sources: a private bucket that only CodeBuild reads; old sources expire.
        sources = aws.s3.Bucket(f"{name}-sources", force_destroy=True,
                                tags=tags_for(args.labels, f"{name}-sources"), opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-sources", bucket=sources.id, block_public_acls=True,
            block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
            opts=child)
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-sources", bucket=sources.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=child)
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-sources", bucket=sources.id,
            rules=[{"id": "expire-sources", "status": "Enabled", "filter": {},
                    "expiration": {"days": SOURCE_RETENTION_DAYS}}], opts=child)

        log_group = aws.cloudwatch.LogGroup(
            f"{name}-builds", name=f"/aws/codebuild/{name}-images", retention_in_days=30,
            tags=tags_for(args.labels, f"{name}-builds"), opts=child)
        role = aws.iam.Role(f"{name}-builder", assume_role_policy=trust("codebuild.amazonaws.com"),
                            description="sdfleet: CodeBuild image builds",
                            tags=tags_for(args.labels, f"{name}-builder"), opts=child)
        repository_arns = [r.arn for r in self.repositories.values()]
        policy = aws.iam.RolePolicy(
            f"{name}-builder", role=role.id,
            policy=policy_json([
                # GetAuthorizationToken has no resource-level permissions (ECR docs).
                allow(["ecr:GetAuthorizationToken"], ["*"]),
                allow(["ecr:BatchCheckLayerAvailability", "ecr:InitiateLayerUpload",
                       "ecr:UploadLayerPart", "ecr:CompleteLayerUpload", "ecr:PutImage",
                       "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"], repository_arns),
                # Pull-through cache: the first pull of a base creates its cache repository
                # and imports it from Docker Hub (ECR docs, "IAM permissions required to sync
                # an upstream registry").
                *([allow(["ecr:CreateRepository", "ecr:BatchImportUpstreamImage",
                          "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
                          "ecr:BatchCheckLayerAvailability"], mirror_arns)] if mirror_arns else []),
                allow(["s3:GetObject", "s3:GetObjectVersion"],
                      [pulumi.Output.concat(sources.arn, "/*")]),
                # CodeBuild's minimum for an S3 source (CodeBuild docs, "Allow CodeBuild to
                # interact with other AWS services"): it reads the bucket's ACL and location.
                allow(["s3:GetBucketAcl", "s3:GetBucketLocation"], [sources.arn]),
                allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                      [pulumi.Output.concat(log_group.arn, ":*")]),
            ]), opts=child)
        self.project = aws.codebuild.Project(
            f"{name}-images", name=f"{name}-images", service_role=role.arn,
            description="sdfleet: builds the stack's container images",
            build_timeout=BUILD_TIMEOUT_MINUTES,
            artifacts={"type": "NO_ARTIFACTS"},
            environment={"type": "LINUX_CONTAINER", "compute_type": BUILD_COMPUTE,
                         "image": BUILD_IMAGE, "privileged_mode": True},
            # Each build overrides the location with its image's source archive.
            source={"type": "S3", "location": pulumi.Output.concat(sources.bucket, "/none.zip"),
                    "buildspec": BUILDSPEC},
            logs_config={"cloudwatch_logs": {"group_name": log_group.name, "status": "ENABLED"}},
            tags=tags_for(args.labels, f"{name}-images"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]))

        for image in to_build:
            source = IMAGES[image]
            tag = image_tag(image)
            digest = content_hash(image)
            archive = aws.s3.BucketObjectv2(
                f"{name}-{image}-source", bucket=sources.id,
                key=f"sources/{image}-{digest}.zip",
                source=pulumi.FileArchive(str(ROOT / source.context)),
                tags=tags_for(args.labels, f"{name}-{image}-source"), opts=child)
            repository = self.repositories[image]
            # The registry's documented address: <account>.dkr.ecr.<region>.amazonaws.com/<repo>.
            image_uri = pulumi.Output.format("{0}.dkr.ecr.{1}.amazonaws.com/{2}:{3}", args.account,
                                             args.region, repository.name, tag)
            build = local.Command(
                f"{name}-{image}-build",
                create=f"bash {BUILD_SCRIPT.relative_to(ROOT)}",
                dir=str(ROOT),
                environment={
                    "PROJECT": self.project.name, "REGION": args.region,
                    "REPOSITORY": repository.name, "TAG": tag,
                    "IMAGE_URI": image_uri,
                    "SOURCE": pulumi.Output.concat(sources.bucket, "/", archive.key),
                    "DOCKERFILE": source.dockerfile,
                    "BUILD_ARGS": registry.apply(
                        lambda host, image=image: build_args_flags(
                            image, f"{host}/{mirror_prefix}" if mirror_arns else None)),
                },
                # A new content hash is a new build; the same hash never builds again.
                triggers=[digest],
                opts=pulumi.ResourceOptions(parent=self,
                                            depends_on=[archive, self.project, *mirror_rules],
                                            custom_timeouts=pulumi.CustomTimeouts(
                                                create=f"{BUILD_TIMEOUT_MINUTES + 10}m")))
            # The reference resolves only once the build has pushed the image.
            self.references[image] = pulumi.Output.all(image_uri, build.id).apply(
                lambda args: args[0])
        self.register_outputs({"project": self.project.name})
