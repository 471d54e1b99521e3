"""Every pod the plan registers lands on nodes the plan makes, on both clouds:
its nodeSelector matches the labels of a registered node pool, and it tolerates every taint
that pool's nodes carry. Taints and labels are read from the registered node pools (GKE
NodePool, EKS NodeGroup, Karpenter NodePool), tolerations from the registered pod specs, so a
toleration that drifts from its taint fails here whichever side moved."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from tests.program.aws.aws_fixtures import aws_config, aws_update  # noqa: F401 (fixtures)
from tools.preview import PlanResult

# GKE API effect names -> Kubernetes (pulumi-gcp NodePoolNodeConfigTaint.effect:
# "NO_SCHEDULE", "PREFER_NO_SCHEDULE", "NO_EXECUTE"; core/v1 Taint.effect).
GKE_EFFECTS = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule",
               "NO_EXECUTE": "NoExecute"}


def node_pools(result: PlanResult) -> dict[str, tuple[dict, list[dict]]]:
    """pool resource name -> (node labels, taints in Kubernetes terms)."""
    pools = {}
    for r in result.of_type("gcp:container/nodePool:NodePool"):
        config = r.inputs.get("nodeConfig") or {}
        taints = [{**t, "effect": GKE_EFFECTS[t["effect"]]} for t in config.get("taints") or []]
        pools[r.name] = (config.get("labels") or {}, taints)
    for r in result.of_type("aws:eks/nodeGroup:NodeGroup"):
        pools[r.name] = (r.inputs.get("labels") or {}, list(r.inputs.get("taints") or []))
    for r in result.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        template = r.inputs["spec"]["template"]
        pools[r.name] = (template["metadata"]["labels"], list(template["spec"].get("taints") or []))
    return pools


def pod_specs(value: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    if isinstance(value, dict):
        if isinstance(value.get("containers"), list):
            yield path, value
        for key, item in value.items():
            yield from pod_specs(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from pod_specs(item, f"{path}[{i}]")


def tolerates(toleration: dict, taint: dict) -> bool:
    """Kubernetes' rule (k8s.io/api core/v1 Toleration.ToleratesTaint)."""
    if toleration.get("effect") and toleration["effect"] != taint["effect"]:
        return False
    if toleration.get("key") and toleration["key"] != taint["key"]:
        return False
    if toleration.get("operator", "Equal") == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def requests_gpu(spec: dict) -> bool:
    return any("nvidia.com/gpu" in (c.get("resources") or {}).get(kind, {})
               for c in spec["containers"] + spec.get("initContainers", [])
               for kind in ("limits", "requests"))


def placement_problems(result: PlanResult) -> tuple[int, list[str]]:
    pools = node_pools(result)
    assert pools, "the plan registers node pools"
    checked, problems = 0, []
    for r in result.resources:
        if not r.type.startswith("kubernetes:") or r.type.startswith("kubernetes:helm"):
            continue
        for path, spec in pod_specs(r.inputs):
            checked += 1
            where = f"{r.type} {r.name}{path}"
            selector = spec.get("nodeSelector")
            if not selector:
                problems.append(f"{where}: no nodeSelector")
                continue
            matching = [n for n, (labels, _) in pools.items()
                        if all(labels.get(k) == v for k, v in selector.items())]
            if not matching:
                problems.append(f"{where}: nodeSelector {selector} matches no node pool")
            for pool in matching:
                for taint in pools[pool][1]:
                    if taint["effect"] != "PreferNoSchedule" and not any(
                            tolerates(t, taint) for t in spec.get("tolerations") or []):
                        problems.append(f"{where}: does not tolerate {taint} of {pool}")
            if requests_gpu(spec) and not any(pools[p][1] for p in matching):
                problems.append(f"{where}: asks for a GPU but its pool has no GPU taint")
    return checked, problems


@pytest.mark.parametrize("stack", ["gcp", "aws"])
def test_every_pod_lands_on_a_pool_it_tolerates(stack, dev_update, aws_update):
    result = dev_update if stack == "gcp" else aws_update
    checked, problems = placement_problems(result)
    # fleet, placeholders, model sync, share prepare, router / model sync and two runtimes
    assert checked >= (5 if stack == "gcp" else 3)
    assert not problems, "\n".join(problems)


def test_a_toleration_of_another_value_is_caught(dev_update):
    fleet = dev_update.one("kubernetes:agones.dev/v1:Fleet")
    pod = fleet.inputs["spec"]["template"]["spec"]["template"]["spec"]
    (toleration,) = pod["tolerations"]
    assert tolerates(toleration, {**toleration, "effect": toleration["effect"]})
    assert not tolerates(toleration, {**toleration, "value": "true"})  # Karpenter's value
