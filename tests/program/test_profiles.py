"""Profiles in the plan: Pulumi.dev.yaml's two profiles make two fleets, each with its own
image, pool placement and autoscaler, and a person-hour price each; a stack without profiles
(tests/fixtures/Pulumi.single-profile.yaml) plans exactly the resources it did before
profiles existed (tests/fixtures/single-profile-resources.json, written from the program
before the change); every profile rule is refused naming its key."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from components.config import ConfigError, parse_stack_config
from tests.stacks import stack_config
from tools.cost import estimate
from tools.plan import _validate

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FLEET = "kubernetes:agones.dev/v1:Fleet"
AUTOSCALER = "kubernetes:autoscaling.agones.dev/v1:FleetAutoscaler"


def test_a_stack_without_profiles_plans_the_same_resources(plan, dev_config):
    result = plan(dev_config, preview=True)
    before = json.loads((FIXTURES / "single-profile-resources.json").read_text())
    # The operators' view came later, as its own feature (and its two APIs), and so did the
    # builds' Docker Hub mirror (a remote repository and the build account's read grant).
    later = {r.urn for r in result.resources if "sdfleet:gcp:OperatorsView" in r.urn
             or r.urn.endswith(("::sdfleet-apis-monitoring", "::sdfleet-apis-logging",
                                "::sdfleet-images-docker-hub", "::sdfleet-images-builder-pulls-bases"))}
    assert sorted(r.urn for r in result.resources if r.urn not in later) == before
    fleet = result.one(FLEET, "sdfleet-webui").inputs
    assert "sdfleet.dev/profile" not in fleet["spec"]["template"]["metadata"]["labels"]
    webui = fleet["spec"]["template"]["spec"]["template"]["spec"]["containers"][0]
    assert "SDFLEET_MODELS_ONLY" not in {e["name"] for e in webui["env"]}


def test_two_profiles_make_two_fleets_on_their_pools_with_their_images(plan, profiles_config):
    result = plan(profiles_config, preview=False)
    fleets = {r.inputs["metadata"]["name"]: r.inputs for r in result.of_type(FLEET)}
    assert sorted(fleets) == ["sdfleet-webui-a1111-l4", "sdfleet-webui-comfyui-a100"]
    for name, pool, framework in (("sdfleet-webui-a1111-l4", "l4", "automatic1111"),
                                  ("sdfleet-webui-comfyui-a100", "a100", "comfyui")):
        pod = fleets[name]["spec"]["template"]["spec"]["template"]["spec"]
        assert pod["nodeSelector"]["sdfleet.dev/pool"] == pool
        webui = pod["containers"][0]
        assert f"/webui-{framework}:" in webui["image"]
        assert {"name": "SDFLEET_FRAMEWORK", "value": framework} in webui["env"]
        assert fleets[name]["metadata"]["labels"]["sdfleet.dev/profile"] == name.split("webui-")[1]
    scalers = {r.inputs["spec"]["fleetName"]: r.inputs["spec"]["policy"] for r in result.of_type(AUTOSCALER)}
    assert scalers["sdfleet-webui-comfyui-a100"]["buffer"] == {
        "bufferSize": 1, "minReplicas": 0, "maxReplicas": 2}
    assert scalers["sdfleet-webui-a1111-l4"]["type"] == "Chain"          # its peak hours
    env = {e["name"]: e["value"] for r in result.resources
           if r.type == "gcp:cloudfunctionsv2/function:Function" and r.name.endswith("allocator")
           for e in [{"name": k, "value": v} for k, v in
                     r.inputs["serviceConfig"]["environmentVariables"].items()]}
    records = json.loads(env["SDFLEET_PROFILES"])
    assert [(p["name"], p["fleet"], p["default"]) for p in records] == [
        ("a1111-l4", "sdfleet-webui-a1111-l4", True),
        ("comfyui-a100", "sdfleet-webui-comfyui-a100", False)]
    assert records[1]["access"] == ["group:comfy-power-users@example.com"]
    assert records[1]["gpu"] == "A100 40GB"
    services = {r.inputs["service"] for r in result.of_type("gcp:projects/service:Service")}
    assert "cloudidentity.googleapis.com" in services       # a profile admits by group
    assert result.outputs["profiles"] == {"a1111-l4": "sdfleet-webui-a1111-l4",
                                          "comfyui-a100": "sdfleet-webui-comfyui-a100"}


def test_each_profile_has_its_person_hour_price(plan, profiles_config):
    result = plan(profiles_config, preview=True)
    cost = estimate(result, _validate("dev", profiles_config))
    hours = cost["profileHourUsd"]
    assert set(hours) == {"a1111-l4", "comfyui-a100"}
    assert hours["comfyui-a100"] > hours["a1111-l4"] > 0     # an A100 costs more than an L4


def _refused(edit) -> list[str]:
    config = copy.deepcopy(stack_config("dev"))
    edit(config["sdfleet:platform"])
    with pytest.raises(ConfigError) as info:
        parse_stack_config(config, stack="dev")
    return info.value.lines


P = "sdfleet:platform"


@pytest.mark.parametrize("edit,expected", [
    (lambda p: p["profiles"][1].update(gpuPool="v100"), f"{P}.profiles[1].gpuPool: 'v100'"),
    (lambda p: p["profiles"][1].update(name="a1111-l4"), f"{P}.profiles[1].name: 'a1111-l4'"),
    (lambda p: p["profiles"][1].update(default=True), f"{P}.profiles[1].default: True"),
    (lambda p: p["profiles"][0].update(default=False), f"{P}.profiles: no profile is the default"),
    (lambda p: p["profiles"][1].update(models=["nope"]), f"{P}.profiles[1].models[0]: 'nope'"),
    (lambda p: p["profiles"][1].update(models=["sdxl-vae"]), f"{P}.profiles[1].models: needs at least one checkpoint"),
    (lambda p: p["profiles"][1].update(warm=3), f"{P}.profiles[1].warm: 3"),
    (lambda p: p["profiles"][1].update(access=["serviceAccount:x@p.iam.gserviceaccount.com"]),
     f"{P}.profiles[1].access[0]"),
    (lambda p: p["fleet"].update(buffer=2), f"{P}.fleet.buffer: set per profile when profiles are given: use profiles[].warm"),
    (lambda p: p["webui"].update(framework="sdnext"), f"{P}.webui.framework: set per profile"),
    (lambda p: (p["gpuPools"].append({"name": "p4", "machineType": "n1-standard-4",
                                      "accelerator": "nvidia-tesla-p4", "timeSharingClients": 4}),
                p["profiles"][0].update(gpuPool="p4")),
     f"{P}.profiles[0].framework: 'automatic1111' is not allowed; AUTOMATIC1111 Stable Diffusion "
     "WebUI needs at least 4 GiB of GPU memory per pod; gpuPools 'p4' gives 2 GiB (P4 shared by 4)"),
])
def test_profile_rules_name_the_key(edit, expected):
    lines = _refused(edit)
    assert any(line.startswith(expected) for line in lines), lines


def test_a_time_shared_small_gpu_still_runs_comfyui():
    config = copy.deepcopy(stack_config("dev"))
    p = config["sdfleet:platform"]
    p["gpuPools"].append({"name": "p4", "machineType": "n1-standard-4",
                          "accelerator": "nvidia-tesla-p4", "timeSharingClients": 4})
    p["profiles"][1]["gpuPool"] = "p4"
    parse_stack_config(config, stack="dev")


def test_a_profiles_peak_hours_turn_on_agones_scheduled_autoscaling(plan, profiles_config):
    """A Chain policy is refused by the CRD Agones renders without the feature gate."""
    result = plan(profiles_config, preview=True)
    release = result.one("kubernetes:helm.sh/v3:Release", "agones").inputs
    assert "ScheduledAutoscaler=true" in release["values"]["agones"]["featureGates"]
    no_peaks = copy.deepcopy(profiles_config)
    del no_peaks["sdfleet:platform"]["profiles"][0]["peakHours"]
    release = plan(no_peaks, preview=True).one("kubernetes:helm.sh/v3:Release", "agones").inputs
    assert "ScheduledAutoscaler" not in release["values"]["agones"]["featureGates"]


def test_a_budget_for_an_unknown_profile_is_refused():
    lines = _refused(lambda p: p["budgets"]["members"].append(
        {"member": "user:x@example.com", "gpuHours": 1, "profile": "nope"}))
    assert any(line.startswith(f"{P}.budgets.members[1].profile: 'nope' is not allowed; must name "
                               "a profile: a1111-l4, comfyui-a100") for line in lines), lines


def test_the_old_plan_time_budget_key_says_it_was_renamed():
    lines = _refused(lambda p: p.update(budget=p.pop("limits")))
    assert any("budget was renamed limits" in line and "`budgets` is the GPU-hours" in line
               for line in lines), lines
