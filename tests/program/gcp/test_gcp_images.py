"""The stack builds its own images before anything runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from components import images
from components.config import ConfigError, parse_platform
from components.gcp.image_builds import BUILD_SCRIPT
from tools.preview import ROOT

COMMAND = "command:local:Command"
FLEET = "kubernetes:agones.dev/v1:Fleet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"


def _depends_on(resource, urn: str) -> bool:
    return urn in resource.dependencies or any(
        urn in urns for urns in resource.property_dependencies.values())


# --- components/images.py ----------------------------------------------------------------------

def test_every_image_has_a_context_with_its_dockerfile():
    assert set(images.IMAGES) == {"router", "webui-automatic1111", "webui-sdnext",
                                  "webui-comfyui", "queue-agent"}
    for name, source in images.IMAGES.items():
        assert (ROOT / source.context / source.dockerfile).is_file(), name
    for fw in images.WEBUI_FRAMEWORKS:
        assert images.IMAGES[f"webui-{fw}"].build_args == {"FRAMEWORK": fw}


def test_content_hash_is_stable_and_follows_files_and_build_args(tmp_path, monkeypatch):
    assert images.content_hash("router") == images.content_hash("router")
    # One Dockerfile, three frameworks: three different images.
    assert len({images.content_hash(f"webui-{fw}") for fw in images.WEBUI_FRAMEWORKS}) == 3
    shutil.copytree(ROOT / "images" / "router", tmp_path / "images" / "router")
    monkeypatch.setattr(images, "ROOT", tmp_path)
    before = images.content_hash("router")
    assert before == images.content_hash("router")
    # A local cache file changes nothing ...
    (tmp_path / "images" / "router" / "sdfleet_router" / "__pycache__").mkdir(exist_ok=True)
    (tmp_path / "images" / "router" / "sdfleet_router" / "__pycache__" / "x.pyc").write_bytes(b"1")
    assert images.content_hash("router") == before
    # ... a changed byte, a new file or a renamed file changes the hash.
    dockerfile = tmp_path / "images" / "router" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "\n")
    changed = images.content_hash("router")
    assert changed != before
    (tmp_path / "images" / "router" / "extra.txt").write_text("x")
    assert images.content_hash("router") not in (before, changed)


def test_unknown_image_name_is_refused():
    with pytest.raises(KeyError, match="unknown image 'webui'"):
        images.content_hash("webui")


# --- Cloud Build from the program ------------------------------------------------------------------

def test_the_images_the_stack_runs_are_built_keyed_by_their_hash(dev_update):
    builds = {c.name: c for c in dev_update.of_type(COMMAND) if "-images-" in c.name}
    assert set(builds) == {"sdfleet-images-router", "sdfleet-images-webui-automatic1111"}
    for image, build in (("router", builds["sdfleet-images-router"]),
                         ("webui-automatic1111", builds["sdfleet-images-webui-automatic1111"])):
        digest = images.content_hash(image)
        reference = f"us-central1-docker.pkg.dev/example-sdfleet-project/sdfleet-images/{image}:{digest}"
        # The hash is the trigger: unchanged content, no new build; changed, a replacement.
        assert build.inputs["triggers"] == [digest, reference]
        env = build.inputs["environment"]
        assert env["SDFLEET_IMAGE"] == reference
        assert env["SDFLEET_CONTEXT"] == images.IMAGES[image].context
        config = json.loads(env["SDFLEET_BUILD_CONFIG"])
        assert config["images"] == [reference]
        args = config["steps"][0]["args"]
        assert args[-1] == "." and ["--tag", reference] == args[1:3]
        for key, value in images.IMAGES[image].build_args.items():
            assert f"{key}={value}" in args
        assert config["options"]["logging"] == "GCS_ONLY"
        assert int(config["timeout"].rstrip("s")) >= 3600
        assert env["SDFLEET_BUILD_ACCOUNT"].startswith("projects/example-sdfleet-project/serviceAccounts/")
        assert build.inputs["logging"] == "stdoutAndStderr"
        # No machine-specific path in the state: the context is relative to the project.
        assert "dir" not in build.inputs and not env["SDFLEET_CONTEXT"].startswith("/")
        # No update script: a new hash must replace the Command, which runs the build.
        assert "update" not in build.inputs


def test_builds_wait_for_the_api_the_repository_and_the_builders_grants(dev_update):
    api = dev_update.one("gcp:projects/service:Service", "cloudbuild")
    repo = next(r for r in dev_update.of_type("gcp:artifactregistry/repository:Repository") if r.name == "sdfleet-images")
    writer = dev_update.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
                            "builder-pushes")
    assert writer.inputs["role"] == "roles/artifactregistry.writer"
    bucket_grants = [g for g in dev_update.of_type("gcp:storage/bucketIAMMember:BucketIAMMember")
                     if "images-builder" in g.name]
    # Storage Admin, on the staging bucket only (Cloud Build: logs in a user-created bucket).
    assert [g.inputs["role"] for g in bucket_grants] == ["roles/storage.admin"]
    staging = dev_update.one("gcp:storage/bucket:Bucket", "images-staging")
    assert staging.urn in bucket_grants[0].property_dependencies["bucket"]
    for build in (c for c in dev_update.of_type(COMMAND) if "-images-" in c.name):
        for needed in (api, repo, writer, *bucket_grants):
            assert needed.urn in build.dependencies, (build.name, needed.name)
    # The builder holds no project-wide role.
    assert not [m for m in dev_update.of_type("gcp:projects/iAMMember:IAMMember")
                if "images-builder" in m.name]


def test_no_workload_exists_before_its_image(dev_update):
    router_build = dev_update.one(COMMAND, "images-router").urn
    webui_build = dev_update.one(COMMAND, "images-webui-automatic1111").urn
    assert _depends_on(dev_update.one(DEPLOYMENT, "router"), router_build)
    assert _depends_on(dev_update.one(FLEET), webui_build)
    assert _depends_on(dev_update.one(JOB, "model-sync"), webui_build)


def test_build_script_runs_gcloud_builds_submit_with_the_config(tmp_path):
    """The real script with a fake gcloud: the arguments and the config file it is given."""
    fake = tmp_path / "gcloud"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n'
                    f'for a in "$@"; do case "$a" in --config=*) cp "${{a#--config=}}" {tmp_path}/cfg;; esac; done\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SDFLEET_IMAGE": "r/i:1", "SDFLEET_CONTEXT": "images/router",
           "SDFLEET_PROJECT": "p1", "SDFLEET_REGION": "us-central1", "SDFLEET_BUCKET": "b1",
           "SDFLEET_BUILD_ACCOUNT": "projects/p1/serviceAccounts/sa@p1.iam.gserviceaccount.com",
           "SDFLEET_BUILD_CONFIG": '{"images": ["r/i:1"]}'}
    proc = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    args = (tmp_path / "args").read_text().split()
    assert args[:3] == ["builds", "submit", "images/router"]
    assert "--project=p1" in args and "--region=us-central1" in args
    assert "--service-account=projects/p1/serviceAccounts/sa@p1.iam.gserviceaccount.com" in args
    assert "--gcs-source-staging-dir=gs://b1/sources" in args
    assert "--gcs-log-dir=gs://b1/logs" in args
    assert json.loads((tmp_path / "cfg").read_text()) == {"images": ["r/i:1"]}
    # Started elsewhere, it says where to run instead of uploading the wrong folder.
    elsewhere = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True,
                               text=True, timeout=30, cwd=tmp_path)
    assert elsewhere.returncode == 1 and "run pulumi from the sdfleet project" in elsewhere.stderr


def test_all_prebuilt_means_no_builder_at_all(plan, platform_of):
    refs = {"router": "example.com/sd/router:1", "webui-automatic1111": "example.com/sd/webui:1"}
    result = plan(platform_of(lambda p: p.update(images={"prebuilt": refs})))
    assert not [c for c in result.of_type(COMMAND) if "-images-" in c.name]
    assert not [a for a in result.of_type("gcp:serviceaccount/account:Account") if "builder" in a.name]
    assert result.outputs["images"] == refs


def test_make_plan_shows_the_image_builds():
    proc = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "dev"], cwd=ROOT,
                          text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "+ command:local:Command  sdfleet-images-router" in proc.stdout
    assert "+ command:local:Command  sdfleet-images-webui-automatic1111" in proc.stdout


# --- config ------------------------------------------------------------------------------------------

def _parse(platform: dict):
    return parse_platform(platform, stack="t", gcp_project="p", gcp_region="us-central1")


def _base() -> dict:
    return {"cloud": "gcp", "gpuPools": [{"name": "l4", "machineType": "g2-standard-8",
                                          "accelerator": "nvidia-l4"}],
            "access": {"domain": "sd.corp.test", "organizationDomain": "corp.test",
                       "members": ["user:a@corp.test"]}}


@pytest.mark.parametrize("prebuilt, key, text", [
    ({"webui": "r.io/p/w:1"}, "prebuilt.webui", "unknown image 'webui'"),
    ({"router": "r.io/p/router:has space"}, "prebuilt.router", "not a full image reference"),
    ({"router": "r.io/P/Upper:1"}, "prebuilt.router", "not a full image reference"),
    ({"router": "r.io/p/router@sha256:abc"}, "prebuilt.router", "not a full image reference"),
])
def test_bad_prebuilt_entries_name_the_key(prebuilt, key, text):
    with pytest.raises(ConfigError) as err:
        _parse({**_base(), "images": {"prebuilt": prebuilt}})
    line = "\n".join(err.value.lines)
    assert "sdfleet:platform.images.prebuilt" in line and key in line and text in line


def test_good_prebuilt_references_pass():
    refs = {"router": "us-docker.pkg.dev/p/sdfleet/router:v1",
            "webui-comfyui": "ghcr.io/org/webui@sha256:" + "a" * 64,
            "queue-agent": "localhost:5000/agent"}
    assert dict(_parse({**_base(), "images": {"prebuilt": refs}}).platform.images.prebuilt) == refs


@pytest.mark.parametrize("key, target", [("image", "images.prebuilt.webui-<framework>"),
                                         ("routerImage", "images.prebuilt.router")])
def test_old_webui_image_keys_say_where_they_moved(key, target):
    with pytest.raises(ConfigError) as err:
        _parse({**_base(), "webui": {key: "r.io/p/x:1"}})
    assert f"webui.{key} moved: set {target}" in "\n".join(err.value.lines)


def test_every_docker_build_uses_buildkit():
    """The WebUI Dockerfile needs BuildKit (`RUN --mount=type=secret`); Cloud Build's docker
    builder uses the classic builder unless asked (docker/cli#4319), and so may CodeBuild's."""
    from components.aws.images import BUILDSPEC
    from components.gcp.image_builds import build_config
    from components.images import IMAGES
    for name in IMAGES:
        steps = build_config(f"example/{name}:x", name)["steps"]
        builds = [s for s in steps if s["args"][:1] == ["build"]]
        assert builds and all("DOCKER_BUILDKIT=1" in s.get("env", []) for s in builds), name
    build_lines = [line for line in BUILDSPEC.splitlines() if "docker build" in line]
    assert build_lines and all("DOCKER_BUILDKIT=1 docker build" in line for line in build_lines)


def _retrying_gcloud(tmp_path, failures: int, message: str):
    """A fake gcloud that fails `failures` times with `message`, then succeeds."""
    fake = tmp_path / "gcloud"
    fake.write_text(f'#!/bin/sh\nn=$(cat {tmp_path}/calls 2>/dev/null || echo 0)\n'
                    f'echo $((n + 1)) > {tmp_path}/calls\n'
                    f'if [ "$n" -lt {failures} ]; then echo "{message}" >&2; exit 1; fi\n'
                    'echo "DONE"\n')
    fake.chmod(0o755)
    from components.gcp.image_builds import PERMISSION_ERRORS
    return {"PATH": f"{tmp_path}:/usr/bin:/bin", "SDFLEET_IMAGE": "r/i:1",
            "SDFLEET_CONTEXT": "images/router", "SDFLEET_PROJECT": "p1",
            "SDFLEET_REGION": "us-central1", "SDFLEET_BUCKET": "b1",
            "SDFLEET_BUILD_ACCOUNT": "projects/p1/serviceAccounts/sa@p1.iam.gserviceaccount.com",
            "SDFLEET_BUILD_CONFIG": "{}", "SDFLEET_PERMISSION_ERRORS": PERMISSION_ERRORS,
            "SDFLEET_IAM_RETRY_PAUSE": "0", "SDFLEET_IAM_WAIT_SECONDS": "30"}


@pytest.mark.parametrize("message", [
    # gcloud's own refusal to stage the source, and the build's refusal to push.
    "ERROR: (gcloud.builds.submit) PERMISSION_DENIED: The caller does not have permission",
    "sa@p1.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud "
    "Storage object.",
    "denied: Permission 'artifactregistry.repositories.uploadArtifacts' denied on resource",
])
def test_build_waits_out_iam_propagation(tmp_path, message):
    env = _retrying_gcloud(tmp_path, 2, message)
    proc = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calls").read_text().strip() == "3"
    assert "IAM grants made in this pulumi up take about 2 minutes" in proc.stderr
    assert "DONE" in proc.stdout


def test_build_fails_at_once_on_other_errors(tmp_path):
    env = _retrying_gcloud(tmp_path, 5, "ERROR: build step 0 failed: exit status 1")
    proc = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and (tmp_path / "calls").read_text().strip() == "1"
    assert "retrying" not in proc.stderr


def test_build_gives_up_on_a_lasting_permission_error_with_what_to_check(tmp_path):
    env = {**_retrying_gcloud(tmp_path, 99, "PERMISSION_DENIED: no"), "SDFLEET_IAM_WAIT_SECONDS": "0"}
    proc = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 1 and (tmp_path / "calls").read_text().strip() == "1"
    assert "still reports a permission error" in proc.stderr
    assert "Artifact Registry Writer" in proc.stderr and "iam.serviceAccounts.actAs" in proc.stderr
