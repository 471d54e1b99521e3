"""Base images come through the cloud's own Docker Hub mirror, pinned as the Dockerfile pins them.

Cloud Build and CodeBuild workers share addresses, and Docker Hub answers their anonymous pulls
with `429 toomanyrequests`; a build that pulls its base from Docker Hub fails at random. Every
Dockerfile names its base once (a global `ARG <NAME>_IMAGE`), and the cloud builds pass the same
reference through a mirror: an Artifact Registry remote repository on GCP, an ECR pull-through
cache on AWS. A mirror serves the upstream manifest, so a digest pin holds through it.
"""

from __future__ import annotations

import inspect
import json
import re

import dockerfile
import pulumi_gcp as gcp
import pytest

from components.config import ConfigError, parse_platform
from components.images import IMAGES, ROOT, base_images, docker_hub_path, mirrored_bases
from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update  # noqa: F401

COMMAND = "command:local:Command"
REPOSITORY = "gcp:artifactregistry/repository:Repository"
MIRROR = "us-central1-docker.pkg.dev/example-sdfleet-project/sdfleet-images-docker-hub"


def _stages(path) -> set[str]:
    return {i.value[2].lower() for i in dockerfile.parse_file(str(path))
            if i.cmd.lower() == "from" and len(i.value) >= 3 and i.value[1].lower() == "as"}


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_base_is_a_build_arg_the_builds_can_move(name):
    """A literal `FROM python:...` would bypass the mirror: every FROM names an earlier stage
    or a global `<NAME>_IMAGE` argument with a default reference."""
    source = IMAGES[name]
    path = ROOT / source.context / source.dockerfile
    stages = _stages(path)
    bases = base_images(name)
    for ins in dockerfile.parse_file(str(path)):
        if ins.cmd.lower() != "from":
            continue
        ref = ins.value[0]
        arg = re.fullmatch(r"\$\{(\w+)\}", ref)
        assert ref.lower() in stages or (arg and (arg.group(1) in bases
                                                  or arg.group(1) == "FRAMEWORK")), (name, ref)
    assert bases, f"{name}: no base image argument"


def test_docker_hub_paths_follow_the_docker_reference_rules():
    assert docker_hub_path("python:3.11-slim") == "library/python:3.11-slim"
    assert docker_hub_path("docker.io/library/python:3.11") == "library/python:3.11"
    assert docker_hub_path("nvidia/cuda:12.8.1@sha256:" + "a" * 64) == "nvidia/cuda:12.8.1@sha256:" + "a" * 64
    for elsewhere in ("registry.k8s.io/pause:3.10", "localhost/x:1", "host:5000/x:1",
                      "us-docker.pkg.dev/p/r/x:1"):
        assert docker_hub_path(elsewhere) is None


def test_a_mirrored_base_keeps_the_dockerfiles_tag_and_digest():
    (cuda,) = base_images("webui-automatic1111").values()
    assert re.search(r"@sha256:[0-9a-f]{64}$", cuda), "the CUDA base is pinned by digest"
    moved = mirrored_bases("webui-automatic1111", "mirror.example/p/r")["CUDA_IMAGE"]
    assert moved == f"mirror.example/p/r/{cuda}"
    assert mirrored_bases("queue-agent", "m.example/r")["BASE_IMAGE"].startswith("m.example/r/library/python:")
    assert mirrored_bases("router", None) == {}


def test_the_remote_repository_is_docker_hub_as_the_provider_names_it():
    doc = inspect.getdoc(gcp.artifactregistry.RepositoryRemoteRepositoryConfigDockerRepositoryArgs.__init__)
    assert "Possible values are: `DOCKER_HUB`" in doc


def test_gcp_builds_pull_their_bases_through_the_stacks_remote_repository(dev_update):
    (mirror,) = [r for r in dev_update.of_type(REPOSITORY)
                 if r.inputs.get("mode") == "REMOTE_REPOSITORY"]
    assert mirror.inputs["format"] == "DOCKER"
    assert mirror.inputs["remoteRepositoryConfig"]["dockerRepository"]["publicRepository"] == "DOCKER_HUB"
    assert MIRROR.endswith("/" + mirror.inputs["repositoryId"])
    # The build account may read the mirror, nothing more.
    grants = [g for g in dev_update.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
              if mirror.urn in g.property_dependencies.get("repository", [])]
    assert [g.inputs["role"] for g in grants] == ["roles/artifactregistry.reader"]
    assert "images-builder" in grants[0].inputs["member"]
    builds = [c for c in dev_update.of_type(COMMAND) if "-images-" in c.name]
    assert builds
    for build in builds:
        image = build.name.split("-images-", 1)[1]
        config = json.loads(build.inputs["environment"]["SDFLEET_BUILD_CONFIG"])
        args = config["steps"][0]["args"]
        passed = dict(a.split("=", 1) for a in args[args.index("build"):] if "=" in a and "_IMAGE=" in a)
        assert passed == {arg: f"{MIRROR}/{docker_hub_path(ref)}"
                          for arg, ref in base_images(image).items()}, image
        assert mirror.urn in build.dependencies and grants[0].urn in build.dependencies


def _build_args(result) -> dict[str, str]:
    return {c.name.rsplit("-build", 1)[0].split("-", 1)[1]: c.inputs["environment"]["BUILD_ARGS"]
            for c in result.of_type(COMMAND) if c.name.endswith("-build")}


CREDENTIAL = "arn:aws:secretsmanager:us-east-1:123456789012:secret:ecr-pullthroughcache/docker-hub-AbCdEf"


def test_aws_builds_pull_through_an_ecr_cache_of_docker_hub(plan, aws_config_of):
    result = plan(aws_config_of(lambda p: p.setdefault("images", {}).update(
        dockerHubCredential=CREDENTIAL)), stack=STACK)
    rule_resource = result.one("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    rule = rule_resource.inputs
    # No build starts before the cache rule exists.
    builds = [c for c in result.of_type(COMMAND) if c.name.endswith("-build")]
    assert builds and all(rule_resource.urn in b.dependencies for b in builds)
    assert rule["upstreamRegistryUrl"] == "registry-1.docker.io"
    assert rule["credentialArn"] == CREDENTIAL
    prefix = rule["ecrRepositoryPrefix"]
    args = _build_args(result)
    assert args
    for image, flags in args.items():
        for arg, ref in base_images(image).items():
            assert re.search(rf"--build-arg {arg}=\d{{12}}\.dkr\.ecr\.us-east-1\.amazonaws\.com/"
                             rf"{re.escape(prefix)}/{re.escape(docker_hub_path(ref))}(\s|$)", flags), (image, flags)
    # The builder may create and import the cache's repositories, under that prefix only.
    (policy,) = [p for p in result.of_type("aws:iam/rolePolicy:RolePolicy") if "builder" in p.name]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    (importing,) = [s for s in statements if "ecr:BatchImportUpstreamImage" in s["Action"]]
    assert "ecr:CreateRepository" in importing["Action"]
    assert all(r.endswith(f":repository/{prefix}/*") for r in importing["Resource"])


def test_aws_without_a_credential_builds_from_docker_hub_and_plans_no_cache(aws_update):
    assert not aws_update.of_type("aws:ecr/pullThroughCacheRule:PullThroughCacheRule")
    args = _build_args(aws_update)
    assert args
    for image, flags in args.items():
        # No base argument: the Dockerfile's own default (Docker Hub) is pulled.
        for arg in base_images(image):
            assert f"--build-arg {arg}=" not in flags, (image, flags)


def _gcp_platform(images: dict) -> dict:
    return {"cloud": "gcp", "gpuPools": [{"name": "t4", "machineType": "n1-standard-8",
                                          "accelerator": "nvidia-tesla-t4"}],
            "images": images}


@pytest.mark.parametrize("cloud_region, value, text", [
    ("gcp", CREDENTIAL, "GCP image builds pull Docker Hub bases through the stack's Artifact Registry"),
    ("aws", "arn:aws:secretsmanager:us-east-1:123456789012:secret:dockerhub",
     "ecr-pullthroughcache"),
])
def test_a_misplaced_or_malformed_credential_names_the_key(cloud_region, value, text, aws_config):
    if cloud_region == "gcp":
        platform = _gcp_platform({"dockerHubCredential": value})
        with pytest.raises(ConfigError) as err:
            parse_platform(platform, stack="dev", gcp_project="p", gcp_region="us-central1")
    else:
        platform = json.loads(json.dumps(aws_config["sdfleet:platform"]))
        platform.setdefault("images", {})["dockerHubCredential"] = value
        with pytest.raises(ConfigError) as err:
            parse_platform(platform, stack=STACK, aws_region="us-east-1")
    message = "\n".join(err.value.lines)
    assert "images.dockerHubCredential" in message and text in message
