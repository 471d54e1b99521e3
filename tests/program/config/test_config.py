"""Every config rule: a bad value stops the program with a line naming its key path."""

from __future__ import annotations

import copy

import pytest

from components.config import ConfigError, parse_platform
from tools.preview import run_program


def _parse(platform: dict, **provider):
    kwargs = {"gcp_project": "example-project", "gcp_region": "us-central1", **provider}
    return parse_platform(platform, stack="dev", **kwargs)


def _errors(platform: dict, **provider) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _parse(platform, **provider)
    return info.value.lines


@pytest.fixture
def platform(dev_config) -> dict:
    return copy.deepcopy(dev_config["sdfleet:platform"])


def test_dev_stack_is_valid(platform):
    stack = _parse(platform)
    assert stack.platform.cloud == "gcp"
    assert [p.name for p in stack.platform.gpu_pools] == ["l4", "t4-shared"]
    assert stack.platform.fleet_pool.name == "l4"


CASES = [
    # (id, edit, expected key path, a fragment of what is allowed)
    ("unknown-top-key", lambda p: p.update(colour="blue"), "sdfleet:platform.colour", "allowed keys here"),
    ("unknown-pool-key", lambda p: p["gpuPools"][0].update(gpus=2),
     "sdfleet:platform.gpuPools[0].gpus", "acceleratorCount"),
    ("cloud", lambda p: p.update(cloud="azure"), "sdfleet:platform.cloud", "'gcp' or 'aws'"),
    ("accelerator-name", lambda p: p["gpuPools"][0].update(accelerator="nvidia-rtx-4090"),
     "sdfleet:platform.gpuPools[0].accelerator", "nvidia-l4"),
    ("l4-needs-g2", lambda p: p["gpuPools"][0].update(machineType="n1-standard-8"),
     "sdfleet:platform.gpuPools[0].accelerator", "needs machine family g2"),
    ("a100-needs-a2", lambda p: p["gpuPools"][0].update(accelerator="nvidia-tesla-a100"),
     "sdfleet:platform.gpuPools[0].accelerator", "needs machine family a2"),
    ("t4-needs-n1", lambda p: p["gpuPools"][1].update(machineType="g2-standard-8"),
     "sdfleet:platform.gpuPools[1].accelerator", "needs machine family n1"),
    ("pool-min-gt-max", lambda p: p["gpuPools"][0].update(minNodes=7, maxNodes=6),
     "sdfleet:platform.gpuPools[0].minNodes", "<= maxNodes (6)"),
    ("pool-negative-min", lambda p: p["gpuPools"][0].update(minNodes=-1),
     "sdfleet:platform.gpuPools[0].minNodes", "greater than or equal to 0"),
    ("time-sharing-1", lambda p: p["gpuPools"][0].update(timeSharingClients=1),
     "sdfleet:platform.gpuPools[0].timeSharingClients", "greater than or equal to 2"),
    ("duplicate-pool", lambda p: p["gpuPools"][1].update(name="l4"),
     "sdfleet:platform.gpuPools[1].name", "unique"),
    ("system-min-gt-max", lambda p: p["systemPool"].update(minNodes=4, maxNodes=3),
     "sdfleet:platform.systemPool.minNodes", "<= maxNodes"),
    ("cidr-overlap", lambda p: p["network"].update(servicesCidr="10.16.0.0/20"),
     "sdfleet:platform.network.podsCidr", "overlaps network.servicesCidr"),
    ("cidr-syntax", lambda p: p["network"].update(nodesCidr="10.10.0.1/20"),
     "sdfleet:platform.network.nodesCidr", "host bits zero"),
    ("control-plane-28", lambda p: p["network"].update(controlPlaneCidr="172.16.0.0/24"),
     "sdfleet:platform.network.controlPlaneCidr", "/28"),
    ("cluster-zone-region", lambda p: p["cluster"].update(zones=["europe-west4-a"]),
     "sdfleet:platform.cluster.zones[0]", "us-central1"),
    ("pool-zone-region", lambda p: p["gpuPools"][0].update(zones=["us-east1-b"]),
     "sdfleet:platform.gpuPools[0].zones[0]", "us-central1"),
    ("release-channel", lambda p: p["cluster"].update(releaseChannel="NIGHTLY"),
     "sdfleet:platform.cluster.releaseChannel", "'RAPID', 'REGULAR' or 'STABLE'"),
    ("all-users", lambda p: p["access"].update(members=["allUsers"]),
     "sdfleet:platform.access.members[0]", "never allowed"),
    ("filestore-min", lambda p: p["storage"].update(tier="BASIC_SSD", capacityGb=1024),
     "sdfleet:platform.storage.capacityGb", "at least 2560"),
    ("fleet-pool-unknown", lambda p: p["fleet"].update(gpuPool="h100"),
     "sdfleet:platform.fleet.gpuPool", "l4, t4-shared"),
    ("fleet-buffer-gt-max", lambda p: p["fleet"].update(buffer=9),
     "sdfleet:platform.fleet.buffer", "<= fleet.maxReplicas"),
    ("secret-in-object", lambda p: p.update(civitaiToken="abc"),
     "sdfleet:platform.civitaiToken", "secrets go in their own keys"),
    ("model-source-field", lambda p: p["models"]["items"][0].pop("repo"),
     "sdfleet:platform.models.items[0].repo", "needs repo and file"),
    ("default-checkpoint", lambda p: p["models"].update(defaultCheckpoint="sdxl-vae"),
     "sdfleet:platform.models.defaultCheckpoint", "must name a checkpoint"),
    ("extension-unpinned", lambda p: p["models"]["items"].append({
        "name": "ext", "kind": "extension", "source": "url", "url": "https://example.com/ext.git",
        "revision": "main"}), "sdfleet:platform.models.items[2].revision", "40-hex commit"),
    ("kind-missing", lambda p: p["models"]["items"][1].pop("kind"),
     "sdfleet:platform.models.items[1].kind", "only CivitAI entries"),
    ("name-prefix", lambda p: p.update(namePrefix="SD_Fleet"),
     "sdfleet:platform.namePrefix", "should match pattern"),
    ("access-missing", lambda p: p.pop("access"), "sdfleet:platform.access", "IAP"),
]


@pytest.mark.parametrize("edit,path,allowed", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_value_names_key_value_and_allowed(platform, edit, path, allowed):
    edit(platform)
    lines = _errors(platform)
    matching = [line for line in lines if line.startswith(path + ":")]
    assert matching, f"no line for {path} in {lines}"
    assert any(allowed in line for line in matching), matching


def test_every_problem_is_reported_at_once(platform):
    platform["cloud"] = "azure"
    platform["gpuPools"][0]["bogus"] = True
    platform["network"]["nodesCidr"] = "not-a-cidr"
    lines = _errors(platform)
    assert len(lines) == 3, lines


def test_bad_value_is_shown(platform):
    platform["gpuPools"][0]["maxNodes"] = "many"
    (line,) = _errors(platform)
    assert line.startswith("sdfleet:platform.gpuPools[0].maxNodes:") and "'many'" in line


def test_provider_keys_are_required(platform):
    lines = _errors(platform, gcp_project=None, gcp_region=None)
    assert any(line.startswith("gcp:project: missing") for line in lines)
    assert any(line.startswith("gcp:region: missing") for line in lines)


def test_aws_stack_needs_aws_section(platform):
    platform["cloud"] = "aws"
    lines = _errors(platform, aws_region="us-east-1")
    assert any(line.startswith("sdfleet:platform.aws: missing") for line in lines)


def test_bad_config_stops_before_any_resource(dev_config):
    config = copy.deepcopy(dev_config)
    config["sdfleet:platform"]["gpuPools"][0]["accelerator"] = "nvidia-tesla-a100"
    with pytest.raises(Exception) as info:
        run_program(config, preview=True)
    assert "sdfleet:platform.gpuPools[0].accelerator" in str(info.value)
    assert info.value.sdfleet_registrations == []
