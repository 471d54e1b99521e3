"""Preloaded images: with `images.preloadDisk` each WebUI image is written to a disk image after
its build (Google's disk image builder at the pinned commit, in Cloud Build), and each GPU pool
starts its nodes with the disk images of the frameworks its profiles run; a new image makes a
new disk image and new pools. Off, nothing of it is planned (the same-resources test)."""

from __future__ import annotations

import copy
import json
import subprocess

import pytest

from components.config import ConfigError, parse_stack_config
from components.config.images import PreloadDiskConfig
from components.gcp.image_builds import BUILD_SCRIPT
from components.gcp.image_disks import disk_image_name
from tests.stacks import stack_config

COMMAND = "command:local:Command"
NODE_POOL = "gcp:container/nodePool:NodePool"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _preloaded(**extra) -> dict:
    config = copy.deepcopy(stack_config("dev"))
    config["sdfleet:platform"]["images"] = {"preloadDisk": {"builderRef": COMMIT, **extra}}
    return config


def _depends_on(resource, urn: str) -> bool:
    return urn in resource.dependencies or any(
        urn in urns for urns in resource.property_dependencies.values())


def test_each_gpu_pool_starts_with_the_images_its_profiles_run(plan):
    result = plan(_preloaded())
    # keyed by the Pulumi resource name (the GKE name carries the disk images' hash)
    pools = {r.name.removeprefix("sdfleet-"): r for r in result.of_type(NODE_POOL)}
    disks = {name: (r.inputs["nodeConfig"].get("secondaryBootDisks") or []) for name, r in pools.items()}
    # Pulumi.dev.yaml: A1111 on l4, ComfyUI on a100, nothing on t4-shared.
    assert [d["diskImage"] for d in disks["gpu-l4"]] == [
        "global/images/" + result.one(COMMAND, "disks-webui-automatic1111").inputs["triggers"][0]]
    assert [d["diskImage"] for d in disks["gpu-a100"]] == [
        "global/images/" + result.one(COMMAND, "disks-webui-comfyui").inputs["triggers"][0]]
    assert disks["gpu-t4-shared"] == [] and pools["gpu-t4-shared"].inputs["name"] == "gpu-t4-shared"
    assert pools["gpu-l4"].inputs["name"].startswith("gpu-l4-")   # rolled by a new disk image
    for name in ("gpu-l4", "gpu-a100"):
        config = pools[name].inputs["nodeConfig"]
        assert [d["mode"] for d in disks[name]] == ["CONTAINER_IMAGE_CACHE"]
        assert config["gcfsConfig"] == {"enabled": True}   # image streaming: required by the mode
        # The pool waits for its disk image, which waits for the image's build.
        disk = result.one(COMMAND, f"disks-webui-{'automatic1111' if name == 'gpu-l4' else 'comfyui'}")
        assert _depends_on(pools[name], disk.urn)
        image = disk.name.replace("disks-", "images-")
        assert _depends_on(disk, result.one(COMMAND, image).urn)


def test_the_disk_build_runs_the_pinned_builder_on_the_built_image(plan):
    result = plan(_preloaded(diskSizeGb=120))
    disk = result.one(COMMAND, "disks-webui-automatic1111")
    env = disk.inputs["environment"]
    build = json.loads(env["SDFLEET_BUILD_CONFIG"])
    reference = result.one(COMMAND, "images-webui-automatic1111").inputs["triggers"][1]
    assert env["SDFLEET_CONTEXT"] == "-" and env["SDFLEET_IMAGE"] == disk.inputs["triggers"][0]
    clone, checkout, run = build["steps"]
    assert clone["args"][-2:] == ["https://github.com/GoogleCloudPlatform/ai-on-gke.git", "ai-on-gke"]
    assert checkout["args"] == ["-C", "ai-on-gke", "checkout", "--detach", COMMIT]
    assert run["name"].startswith("mirror.gcr.io/") and run["dir"] == "ai-on-gke/tools/gke-disk-image-builder"
    flags = run["args"][3:]
    assert f"--container-image={reference}" in flags
    assert f"--image-name={env['SDFLEET_IMAGE']}" in flags and "--disk-size-gb=120" in flags
    assert "--image-pull-auth=ServiceAccountToken" in flags
    vm = result.one("gcp:serviceaccount/account:Account", "disks-vm").inputs["accountId"]
    assert any(f.startswith("--service-account=" + vm) for f in flags)
    assert any(f.startswith("--subnet=") and "subnetworks/" in f for f in flags)


def test_the_builders_accounts_hold_what_they_need_and_no_more(plan):
    result = plan(_preloaded())
    project_roles = sorted(m.inputs["role"] for m in result.of_type("gcp:projects/iAMMember:IAMMember")
                           if "-disks-" in m.name)
    assert project_roles == ["roles/compute.instanceAdmin.v1", "roles/compute.storageAdmin",
                             "roles/logging.logWriter"]
    (acts,) = [m for m in result.of_type("gcp:serviceaccount/iAMMember:IAMMember") if "disks" in m.name]
    assert acts.inputs["role"] == "roles/iam.serviceAccountUser"      # on the VM's account only
    (pull,) = [m for m in result.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
               if "disks" in m.name]
    assert pull.inputs["role"] == "roles/artifactregistry.reader"


def test_a_new_image_makes_a_new_disk_image_and_new_pools():
    config = PreloadDiskConfig(builderRef=COMMIT)
    one = disk_image_name("sdfleet", "webui-automatic1111", "r/webui:aaaa", config)
    assert one == disk_image_name("sdfleet", "webui-automatic1111", "r/webui:aaaa", config)
    assert one != disk_image_name("sdfleet", "webui-automatic1111", "r/webui:bbbb", config)
    assert one != disk_image_name("sdfleet", "webui-automatic1111", "r/webui:aaaa",
                                  PreloadDiskConfig(builderRef="f" * 40))
    assert len(one) <= 63 and one.replace("-", "").isalnum() and one == one.lower()
    from components.gcp.node_pools import _rolled_name
    assert _rolled_name("gpu-l4", [one]) != _rolled_name("gpu-l4", [one + "x"])


def test_a_source_less_build_submits_no_source(tmp_path):
    fake = tmp_path / "gcloud"
    fake.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\n')
    fake.chmod(0o755)
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "SDFLEET_IMAGE": "d", "SDFLEET_CONTEXT": "-",
           "SDFLEET_PROJECT": "p1", "SDFLEET_REGION": "us-central1", "SDFLEET_BUCKET": "b1",
           "SDFLEET_BUILD_ACCOUNT": "sa", "SDFLEET_BUILD_CONFIG": "{}"}
    proc = subprocess.run(["/bin/sh", "-c", BUILD_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "args").read_text().split()[:3] == ["builds", "submit", "--no-source"]


@pytest.mark.parametrize("preload,expected", [
    ({"builderRef": "main"}, "sdfleet:platform.images.preloadDisk.builderRef"),
    ({}, "sdfleet:platform.images.preloadDisk.builderRef"),
])
def test_the_builder_must_be_pinned_by_commit(preload, expected):
    config = copy.deepcopy(stack_config("dev"))
    config["sdfleet:platform"]["images"] = {"preloadDisk": preload}
    with pytest.raises(ConfigError) as info:
        parse_stack_config(config, stack="dev")
    assert any(line.startswith(expected) for line in info.value.lines), info.value.lines


def test_an_aws_stack_refuses_preloaded_disks():
    config = copy.deepcopy(stack_config("aws-dev"))
    config["sdfleet:platform"]["images"] = {"preloadDisk": {"builderRef": COMMIT}}
    with pytest.raises(ConfigError) as info:
        parse_stack_config(config, stack="aws-dev")
    assert any("images.preloadDisk" in line and "GCP only" in line for line in info.value.lines)


def test_the_estimate_names_what_the_disks_cost(plan):
    from tools.cost import estimate
    from tools.plan import _validate
    config = _preloaded()
    billed = estimate(plan(config, preview=True), _validate("dev", config))["usageBilled"]
    assert any("secondary boot disk" in line for line in billed), billed
