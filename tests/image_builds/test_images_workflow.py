"""`.github/workflows/images.yml`, the workflow users run in their own repository to build,
push and print the digests of sdfleet's images on a version tag."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from sdfleet_webui import frameworks

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
JOB = WORKFLOW["jobs"]["build"]
STEPS = JOB["steps"]


def test_runs_on_version_tags():
    triggers = WORKFLOW[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["tags"] == ["v*"]
    assert WORKFLOW["permissions"] == {"contents": "read", "packages": "write"}


def test_builds_every_image_one_webui_image_per_framework():
    matrix = JOB["strategy"]["matrix"]["include"]
    names = {entry["image"] for entry in matrix}
    assert names == {f"webui-{f}" for f in frameworks.FRAMEWORKS} | {"router", "queue-agent"}
    for entry in matrix:
        assert (ROOT / entry["context"] / "Dockerfile").is_file(), entry
        if entry["image"].startswith("webui-"):
            assert entry["context"] == "images/webui"
            assert entry["framework"] == entry["image"].removeprefix("webui-")
    dockerfile = (ROOT / "images" / "webui" / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{FRAMEWORK\} AS webui$", dockerfile, flags=re.M)


def test_every_action_is_pinned_to_a_commit():
    for step in STEPS:
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]


def test_builds_with_buildx_pushes_and_prints_the_digest():
    uses = [s.get("uses", "").split("@")[0] for s in STEPS]
    assert uses.index("docker/setup-buildx-action") < uses.index("docker/build-push-action")
    build = next(s for s in STEPS if s.get("uses", "").startswith("docker/build-push-action"))
    assert build["with"]["push"] is True and build["id"] == "build"
    assert "FRAMEWORK={0}" in build["with"]["build-args"]
    # tokens only as BuildKit secrets (the Dockerfile's secret mount ids), never build args
    assert "TOKEN" not in build["with"]["build-args"]
    secret_ids = set(re.findall(r"^\s*(\w+)=", build["with"]["secrets"], flags=re.M))
    mounts = set(re.findall(r"--mount=type=secret,id=(\w+)",
                            (ROOT / "images" / "webui" / "Dockerfile").read_text()))
    assert secret_ids == mounts == {"hf_token", "civitai_token"}
    printed = next(s for s in STEPS if s.get("name") == "Print the digest")
    assert printed["env"]["DIGEST"] == "${{ steps.build.outputs.digest }}"
    assert '${IMAGE}@${DIGEST}' in printed["run"]
