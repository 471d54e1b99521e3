"""Spot first, then on-demand: a GPU pool with `onDemandFallback` plans a second, on-demand node
pool that starts empty, both joined to one GKE compute class that lists the Spot pool first;
the profile's pods (WebUI and placeholders) select the class and tolerate its taint; the cost
estimate says what the fallback costs and the GPU-node policy counts both pools."""

from __future__ import annotations

import copy

import pytest

from components.config import ConfigError, parse_stack_config
from tests.stacks import stack_config
from tools.cost import estimate
from tools.plan import _policies, _validate

NODE_POOL = "gcp:container/nodePool:NodePool"
COMPUTE_CLASS = "kubernetes:cloud.google.com/v1:ComputeClass"
FLEET = "kubernetes:agones.dev/v1:Fleet"
CLASS_KEY = "cloud.google.com/compute-class"


def _with_fallback() -> dict:
    config = copy.deepcopy(stack_config("dev"))
    platform = config["sdfleet:platform"]
    next(p for p in platform["gpuPools"] if p["name"] == "l4")["onDemandFallback"] = True
    platform["limits"]["maxGpuNodes"] = 16     # both L4 pools may fill
    return config


def _pod(fleet) -> dict:
    return fleet.inputs["spec"]["template"]["spec"]["template"]["spec"]


def test_spot_pool_then_an_empty_on_demand_pool_in_one_compute_class(plan):
    result = plan(_with_fallback(), preview=False)
    pools = {r.inputs["name"]: r.inputs for r in result.of_type(NODE_POOL)}
    spot, fallback = pools["gpu-l4"], pools["gpu-l4-od"]
    assert spot["nodeConfig"]["spot"] is True and fallback["nodeConfig"]["spot"] is False
    assert fallback["autoscaling"]["totalMinNodeCount"] == 0
    assert fallback["autoscaling"]["totalMaxNodeCount"] == spot["autoscaling"]["totalMaxNodeCount"]
    for pool in (spot, fallback):
        assert pool["nodeConfig"]["labels"]["sdfleet.dev/pool"] == "l4"
        assert pool["nodeConfig"]["labels"][CLASS_KEY] == "sdfleet-l4"
        assert {"key": CLASS_KEY, "value": "sdfleet-l4", "effect": "NO_SCHEDULE"} in \
            pool["nodeConfig"]["taints"]
        assert pool["nodeConfig"]["guestAccelerators"] == spot["nodeConfig"]["guestAccelerators"]
    assert spot["nodeConfig"]["labels"]["sdfleet.dev/capacity"] == "spot"
    assert fallback["nodeConfig"]["labels"]["sdfleet.dev/capacity"] == "on-demand"
    # Pools without a fallback are as they were: no class, no second pool.
    assert CLASS_KEY not in pools["gpu-a100"]["nodeConfig"]["labels"]
    assert "gpu-a100-od" not in pools

    (klass,) = result.of_type(COMPUTE_CLASS)
    assert klass.inputs["metadata"]["name"] == "sdfleet-l4"
    spec = klass.inputs["spec"]
    # The order is the fallback: the names are the node pools' own.
    assert spec["priorities"] == [{"nodepools": ["gpu-l4"]}, {"nodepools": ["gpu-l4-od"]}]
    assert spec["nodePoolAutoCreation"] == {"enabled": False}
    assert spec["whenUnsatisfiable"] == "DoNotScaleUp"
    # Nothing moves a running session back to Spot.
    assert "activeMigration" not in spec


def test_the_profiles_pods_select_the_class_and_tolerate_it(plan):
    result = plan(_with_fallback(), preview=False)
    l4 = _pod(result.one(FLEET, "a1111-l4"))
    assert l4["nodeSelector"] == {"sdfleet.dev/pool": "l4", CLASS_KEY: "sdfleet-l4"}
    assert {"key": CLASS_KEY, "operator": "Equal", "value": "sdfleet-l4",
            "effect": "NoSchedule"} in l4["tolerations"]
    holders = result.one("kubernetes:apps/v1:Deployment", "l4-placeholders").inputs
    assert holders["spec"]["template"]["spec"]["nodeSelector"] == l4["nodeSelector"]
    a100 = _pod(result.one(FLEET, "comfyui-a100"))
    assert CLASS_KEY not in a100["nodeSelector"]
    assert all(t["key"] != CLASS_KEY for t in a100["tolerations"])


def test_the_estimate_prices_the_fallback_and_the_policy_counts_both_pools(plan):
    config = _with_fallback()
    result = plan(config, preview=True)
    cost = estimate(result, _validate("dev", config))
    without = estimate(plan(stack_config("dev"), preview=True), _validate("dev", stack_config("dev")))
    # A person-hour is priced on the Spot pool (at on-demand, the upper bound) either way.
    assert cost["profileHourUsd"] == without["profileHourUsd"]
    text = "\n".join(line["note"] for line in cost["lines"] if "a1111-l4" in line["item"])
    assert "on-demand when no Spot VM can be had" in text, cost["lines"]
    config["sdfleet:platform"]["limits"]["maxGpuNodes"] = 10
    violations, _ = _policies(plan(config, preview=True), _validate("dev", config))
    messages = [v["message"] for v in violations if v["policy"] == "gpu-node-budget"]
    assert any("gpu-l4-od: 6" in m and "maxGpuNodes 10" in m for m in messages), violations


def test_a_fallback_without_spot_is_refused_naming_the_key():
    config = copy.deepcopy(stack_config("dev"))
    pool = next(p for p in config["sdfleet:platform"]["gpuPools"] if p["name"] == "a100")
    pool.update(spot=False, onDemandFallback=True)
    with pytest.raises(ConfigError) as info:
        parse_stack_config(config, stack="dev")
    i = config["sdfleet:platform"]["gpuPools"].index(pool)
    assert any(line.startswith(f"sdfleet:platform.gpuPools[{i}].onDemandFallback: True is not allowed; "
                               "it is a fallback for Spot VMs") for line in info.value.lines)
