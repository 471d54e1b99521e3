"""The Fleet and FleetAutoscaler the program renders pass Agones's own validation.

Agones's webhook rules live in testing/emulators/agones_validation.py (written from Agones
v1.50.0's source, function by function); the feature gates are the ones the program's Helm
release turns on.
"""

from __future__ import annotations

import itertools
import json
import urllib.request

import pytest

from components.config import ConfigError, FleetConfig, PeakHours, parse_platform
from components.k8s.autoscaling import autoscaler_policy
from testing.emulators import agones_validation as agones
from testing.emulators.agones import AgonesEmulator
from tests.program.conftest import assert_all_resolved

FLEET = "kubernetes:agones.dev/v1:Fleet"
AUTOSCALER = "kubernetes:autoscaling.agones.dev/v1:FleetAutoscaler"
HELM = "kubernetes:helm.sh/v3:Release"
PLACEHOLDERS = "kubernetes:apps/v1:Deployment"


def _manifest(registration) -> dict:
    """The object as the provider sends it (the mock engine records camelCase inputs)."""
    return {k: v for k, v in registration.inputs.items() if k != "status"}


def _features(result) -> dict:
    gates = result.one(HELM, "agones").inputs["values"]["agones"]["featureGates"]
    return agones.features_from_gates(gates)


def _pod(fleet: dict) -> dict:
    return fleet["spec"]["template"]["spec"]["template"]["spec"]


VARIATIONS = {
    "dev": None,
    "no-peak-hours": lambda p: p["fleet"].pop("peakHours"),
    "min-equals-buffer": lambda p: p["fleet"].update(buffer=2, minReplicas=2, maxReplicas=6),
    "two-gpu-nodes": lambda p: p["gpuPools"][0].update(machineType="g2-standard-24",
                                                       acceleratorCount=2),
    "time-shared-pool": lambda p: p["fleet"].update(gpuPool="t4-shared", placeholders=1),
    "three-placeholders": lambda p: p["fleet"].update(placeholders=3),
}


@pytest.fixture(params=list(VARIATIONS), ids=list(VARIATIONS))
def rendered(request, plan, platform_of):
    result = plan(platform_of(VARIATIONS[request.param]), preview=False)
    assert_all_resolved(result)
    return result


def test_fleet_and_autoscaler_pass_agones_validation(rendered):
    features = _features(rendered)
    for kind in (FLEET, AUTOSCALER):
        obj = _manifest(rendered.one(kind))
        assert agones.validate(obj, features) == [], (kind, agones.validate(obj, features))


def test_the_emulator_admits_what_the_program_renders(dev_update):
    """End to end over HTTP: the objects as the provider would POST them."""
    emu = AgonesEmulator(token="tok", namespace="sdfleet-webui").start()
    try:
        emu.set_feature_gates(dev_update.one(HELM, "agones").inputs["values"]["agones"]["featureGates"])
        for kind, plural in ((FLEET, "fleets"), (AUTOSCALER, "fleetautoscalers")):
            obj = _manifest(dev_update.one(kind))
            group = obj["apiVersion"].split("/")[0]
            req = urllib.request.Request(
                f"{emu.url}/apis/{group}/v1/namespaces/sdfleet-webui/{plural}",
                data=json.dumps(obj).encode(), method="POST",
                headers={"Authorization": "Bearer tok", "Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                assert resp.status == 201
        assert {k[0] for k in emu.created} == {"Fleet", "FleetAutoscaler"}
    finally:
        emu.stop()


def test_fleet_names_its_game_server_container(dev_update):
    # Item 1: two containers, so Agones requires spec.template.spec.container.
    fleet = _manifest(dev_update.one(FLEET))
    gs_spec = fleet["spec"]["template"]["spec"]
    names = [c["name"] for c in gs_spec["template"]["spec"]["containers"]]
    assert len(names) > 1
    assert gs_spec["container"] == "webui" and gs_spec["container"] in names
    without = json.loads(json.dumps(fleet))
    del without["spec"]["template"]["spec"]["container"]
    assert any(agones.ERR_CONTAINER_REQUIRED in p for p in agones.validate(without))


def test_fleet_leaves_replicas_to_the_autoscaler(dev_update):
    # Item 14: a value here is re-applied on every update and fights the FleetAutoscaler.
    fleet = _manifest(dev_update.one(FLEET))
    assert "replicas" not in fleet["spec"]
    autoscaler = _manifest(dev_update.one(AUTOSCALER))
    assert autoscaler["spec"]["fleetName"] == fleet["metadata"]["name"]


def test_fleet_replicas_are_ignored_on_update(monkeypatch, dev_config):
    """Item 14, for stacks that once set spec.replicas: the Fleet is registered with
    `ignoreChanges: ["spec.replicas"]` (pulumi-kubernetes#2215: the recommended answer to a
    field another manager owns). Read from the registration request itself."""
    import tools.preview as preview
    seen: dict[str, list[str]] = {}
    original = preview.RecordingMonitor.RegisterResource

    def record(self, request):
        seen[request.type] = list(request.ignoreChanges)
        return original(self, request)

    monkeypatch.setattr(preview.RecordingMonitor, "RegisterResource", record)
    preview.run_program(dev_config, stack="dev", preview=True)
    assert seen[FLEET] == ["spec.replicas"]
    assert seen[AUTOSCALER] == []


@pytest.mark.parametrize("count", [1, 2, 4])
def test_placeholders_hold_as_many_gpus_as_a_webui_pod(plan, platform_of, count):
    # Item 17: a placeholder that takes one GPU of a multi-GPU node keeps no node for a
    # WebUI pod that needs all of them.
    machine = {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48"}[count]
    result = plan(platform_of(lambda p: (
        p["gpuPools"][0].update(machineType=machine, acceleratorCount=count),
        p["fleet"].update(placeholders=1))), preview=False)
    webui = next(c for c in _pod(_manifest(result.one(FLEET)))["containers"]
                 if c["name"] == "webui")
    placeholder = result.one(PLACEHOLDERS, "placeholders").inputs
    (pause,) = placeholder["spec"]["template"]["spec"]["containers"]
    assert webui["resources"]["limits"]["nvidia.com/gpu"] == str(count)
    assert pause["resources"]["limits"]["nvidia.com/gpu"] == str(count)


# --- Item 15: the config accepts exactly what Agones accepts ------------------------------------

def _config_accepts(dev_config, fleet: dict) -> bool:
    platform = json.loads(json.dumps(dev_config["sdfleet:platform"]))
    platform["fleet"] = {**platform["fleet"], **fleet}
    try:
        parse_platform(platform, stack="dev", gcp_project="example-project",
                       gcp_region="us-central1")
    except ConfigError as error:
        assert all("fleet" in line for line in error.lines), error.lines
        return False
    return True


def _agones_accepts(fleet: dict) -> bool:
    model = FleetConfig.model_validate(fleet)
    obj = {"apiVersion": "autoscaling.agones.dev/v1", "kind": "FleetAutoscaler",
           "metadata": {"name": "fa"},
           "spec": {"fleetName": "f", "policy": autoscaler_policy(model)}}
    return agones.validate(obj, agones.features_from_gates("ScheduledAutoscaler=true")) == []


GRID = [{"buffer": b, "minReplicas": lo, "maxReplicas": hi, "peakHours": None}
        for b, lo, hi in itertools.product(range(0, 4), range(0, 5), range(1, 5))]


def test_config_and_agones_agree_on_buffer_rules(dev_config):
    disagreements = [case for case in GRID
                     if _config_accepts(dev_config, case) != _agones_accepts(case)]
    assert not disagreements, disagreements
    # the grid holds both verdicts, including the two cases of the buffer rule
    assert not _config_accepts(dev_config, {"buffer": 0, "minReplicas": 0, "maxReplicas": 4,
                                            "peakHours": None})
    assert not _config_accepts(dev_config, {"buffer": 3, "minReplicas": 2, "maxReplicas": 4,
                                            "peakHours": None})
    assert _config_accepts(dev_config, {"buffer": 2, "minReplicas": 0, "maxReplicas": 4,
                                        "peakHours": None})


@pytest.mark.parametrize("peak", [0, 1, 2, 3, 5])
@pytest.mark.parametrize("base", [(1, 0, 4), (2, 2, 4), (0, 0, 4)])
def test_peak_hours_buffer_follows_the_same_rules(dev_config, base, peak):
    """Agones v1.50.0 does not validate a Schedule's nested policy at admission, but the
    autoscaler applies it as a Buffer policy: the config holds it to the Buffer rules, so
    what the config accepts Agones always accepts."""
    buffer, low, high = base
    case = {"buffer": buffer, "minReplicas": low, "maxReplicas": high,
            "peakHours": {"startCron": "0 8 * * 1-5", "duration": "10h",
                          "timezone": "Europe/Berlin", "buffer": peak}}
    nested_ok = not agones.validate_buffer_policy(
        {"bufferSize": peak, "minReplicas": low, "maxReplicas": high}, "peak")
    accepted = _config_accepts(dev_config, case)
    assert accepted == (_agones_accepts(case) and nested_ok)
    if accepted:
        assert _agones_accepts(case)
    assert PeakHours.model_validate(case["peakHours"]).buffer == peak


@pytest.mark.parametrize("fleet,key,allowed", [
    ({"buffer": 0}, "sdfleet:platform.fleet.buffer: 0 is not allowed", ">= 1"),
    ({"buffer": 3, "minReplicas": 2}, "sdfleet:platform.fleet.minReplicas: 2 is not allowed",
     "0 or >= every buffer (3)"),
    ({"peakHours": {"buffer": 0}}, "sdfleet:platform.fleet.peakHours.buffer: 0 is not allowed",
     ">= 1"),
    ({"buffer": 2, "minReplicas": 1, "peakHours": {"buffer": 3}},
     "sdfleet:platform.fleet.minReplicas: 1 is not allowed", "0 or >= every buffer (2)"),
])
def test_buffer_errors_name_key_value_and_rule(dev_config, fleet, key, allowed):
    platform = json.loads(json.dumps(dev_config["sdfleet:platform"]))
    peak = fleet.pop("peakHours", None)
    platform["fleet"].update(fleet)
    if peak:
        platform["fleet"]["peakHours"].update(peak)
    with pytest.raises(ConfigError) as info:
        parse_platform(platform, stack="dev", gcp_project="example-project",
                       gcp_region="us-central1")
    assert any(line.startswith(key) and allowed in line for line in info.value.lines), \
        info.value.lines
