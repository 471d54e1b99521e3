"""The pack end to end: served to the CLI's gRPC interface, and run by `make plan` on stacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy.sdfleet_policies import POLICIES
from tests.policy.test_resource_policies import GPU_POOL

ROOT = Path(__file__).resolve().parents[2]
EXIT_POLICY_VIOLATION = 3


def _struct(value: dict) -> struct_pb2.Struct:
    return json_format.ParseDict(value, struct_pb2.Struct())


@pytest.fixture
def served_pack():
    """policy/ started as the Pulumi CLI starts a Python pack, with a stack config whose GPU
    budget is 2 (the pack must find it without any policy config)."""
    platform = {"cloud": "gcp", "limits": {"maxGpuNodes": 2}, "labels": {"app": "sdfleet"}}
    env = {**os.environ, "PULUMI_CONFIG": json.dumps({"sdfleet:platform": json.dumps(platform)})}
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(ROOT / "policy")],
                            cwd=ROOT / "policy", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read().decode() if proc.poll() is not None else port
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.kill()
        proc.wait()


def test_served_pack_lists_the_policies_and_enforces_them(served_pack):
    info = served_pack.GetAnalyzerInfo(empty_pb2.Empty())
    assert info.name == "sdfleet"
    assert sorted(p.name for p in info.policies) == sorted(p.name for p in POLICIES)

    public = served_pack.Analyze(analyzer_pb2.AnalyzeRequest(
        type="gcp:cloudfunctionsv2/function:Function", name="allocator",
        urn="urn:pulumi:dev::sdfleet::gcp:cloudfunctionsv2/function:Function::allocator",
        properties=_struct({"serviceConfig": {"ingressSettings": "ALLOW_ALL"}, "labels": {"app": "x"}})))
    assert [(d.policyName, d.enforcementLevel) for d in public.diagnostics] == \
        [("functions-internal-ingress", analyzer_pb2.MANDATORY)]

    pool_urn = "urn:pulumi:dev::sdfleet::gcp:container/nodePool:NodePool::l4"
    stack = served_pack.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[
        analyzer_pb2.AnalyzerResource(type="gcp:container/nodePool:NodePool", name="l4",
                                      urn=pool_urn, properties=_struct(GPU_POOL))]))
    budget = [d for d in stack.diagnostics if d.policyName == "gpu-node-budget"]
    assert len(budget) == 1
    assert "exceed limits.maxGpuNodes 2" in budget[0].message  # the cap came from the stack config


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", "--format", "json", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_default_stacks_pass_every_mandatory_policy_and_have_a_cost(stack):
    run = _plan("--stack", stack)
    assert run.returncode == 0, run.stderr
    plan = json.loads(run.stdout)
    assert len(plan["policiesEvaluated"]) >= 12
    assert [v for v in plan["policies"] if v["level"] == "mandatory"] == []
    assert plan["cost"]["totalMonthlyUsd"] > 0
    assert plan["cost"]["gpuHourUsd"] > 0
    assert plan["cost"]["missing"] == []


def test_gpu_pools_over_the_budget_make_the_plan_exit_3(tmp_path):
    stack = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    platform = stack["config"]["sdfleet:platform"]
    most = sum(pool["maxNodes"] for pool in platform["gpuPools"])
    platform["limits"] = {"maxGpuNodes": most - 1}
    path = tmp_path / "Pulumi.over-budget.yaml"
    path.write_text(yaml.safe_dump(stack))

    run = _plan("--config-file", str(path))
    assert run.returncode == EXIT_POLICY_VIOLATION, run.stderr
    violations = json.loads(run.stdout)["policies"]
    assert [(v["policy"], v["level"]) for v in violations if v["level"] == "mandatory"] == \
        [("gpu-node-budget", "mandatory")]
    assert f"up to {most} GPU nodes" in next(v["message"] for v in violations
                                              if v["policy"] == "gpu-node-budget")


def test_the_pack_serves_every_policy_each_concern_module_defines():
    """A policy defined in a module of sdfleet_policies/ but left out of pack.py never runs."""
    import importlib
    import pkgutil

    import policy.sdfleet_policies as package

    defined = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        if info.name != "pack":
            defined += getattr(module, "POLICIES", [])
    assert len(defined) >= 18  # the concern modules were found and do define policies
    served = [p.name for p in POLICIES]
    assert len(served) == len(set(served)), "two policies share a name"
    assert sorted(served) == sorted(p.name for p in defined)
