"""The AWS rules of the stack config, and `make plan` on the aws-dev stack as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.config import ConfigError, parse_platform
from tests.program.aws.aws_fixtures import aws_config  # noqa: F401
from tools.preview import ROOT


def _parse(platform: dict, region: str | None = "us-east-1"):
    return parse_platform(platform, stack="aws-dev", aws_region=region)


def _problems(platform: dict, region: str | None = "us-east-1") -> list[str]:
    with pytest.raises(ConfigError) as err:
        _parse(platform, region)
    return err.value.lines


def test_the_example_stack_is_valid(aws_config):
    stack = _parse(aws_config["sdfleet:platform"], aws_config["aws:region"])
    assert stack.platform.aws.runtimes[1].mode == "scaledobject"
    # Unset: sized from the smallest node of gpu.families (components/config/aws_instances.py).
    assert stack.platform.aws.runtimes[1].memory is None


def test_aws_stack_needs_region_and_section():
    lines = _problems({"cloud": "aws"}, region=None)
    assert any(line.startswith("aws:region: missing") for line in lines)
    assert any(line.startswith("sdfleet:platform.aws: missing") for line in lines)


def test_public_endpoint_is_never_open_to_the_internet():
    lines = _problems({"cloud": "aws", "aws": {"cluster": {"publicAccessCidrs": ["203.0.113.0/24",
                                                                     "0.0.0.0/0"]}}})
    assert lines == [
        "sdfleet:platform.aws.cluster.publicAccessCidrs[1]: '0.0.0.0/0' is not allowed; the EKS API is "
        "opened only to known networks (a /8 or narrower), e.g. 203.0.113.0/24; leave the list "
        "empty for a private endpoint"]


def test_job_timeout_must_leave_room_for_the_visibility_margin():
    (line,) = _problems({"cloud": "aws", "aws": {"jobs": {"timeoutSeconds": 43000}}})
    assert line.startswith("sdfleet:platform.aws.jobs.timeoutSeconds: 43000 is not allowed; at most "
                           "42900 s")
    assert _parse({"cloud": "aws", "aws": {"jobs": {"timeoutSeconds": 42900}}})


def test_vpc_must_hold_six_subnets():
    (line,) = _problems({"cloud": "aws", "aws": {"network": {"vpcCidr": "10.40.0.0/24"}}})
    assert line.startswith("sdfleet:platform.aws.network.vpcCidr: the VPC needs at least a /20")


def test_runtime_names_unique_and_unknown_keys_named():
    lines = _problems({"cloud": "aws", "aws": {"runtimes": [{"name": "a1"}, {"name": "a1",
                                                                            "gpus": 2}]}})
    assert any(line.startswith("sdfleet:platform.aws.runtimes[1].gpus: unknown key") for line in lines)
    lines = _problems({"cloud": "aws", "aws": {"runtimes": [{"name": "a1"}, {"name": "a1"}]}})
    assert lines == ["sdfleet:platform.aws.runtimes[1].name: 'a1' is not allowed; "
                     "runtime names must be unique"]


def test_json_plan_lists_the_batch_platform():
    proc = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "aws-dev",
                           "--format", "json"], cwd=ROOT, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    by_type: dict[str, list[dict]] = {}
    for r in doc["resources"]:
        by_type.setdefault(r["type"], []).append(r)
    assert len(by_type["aws:eks/cluster:Cluster"]) == 1
    charts = {r["inputs"]["chart"] for r in by_type["kubernetes:helm.sh/v3:Release"]}
    assert charts == {"oci://public.ecr.aws/karpenter/karpenter", "keda"}
    queues = by_type["aws:sqs/queue:Queue"]
    redriven = [q for q in queues if "redrivePolicy" in q["inputs"]]
    assert len(redriven) == 3 and len(queues) == 6
    assert len(by_type["aws:apigateway/restApi:RestApi"]) == 1
    assert len(by_type["aws:apigateway/usagePlan:UsagePlan"]) == 1
    (fn,) = by_type["aws:lambda/function:Function"]
    assert fn["inputs"]["name"] == "sdbatch-submit"
    # the results bucket and the image build sources, both private
    assert len(by_type["aws:s3/bucket:Bucket"]) == 2
    assert len(by_type["aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"]) == 2
    assert len(by_type["aws:efs/fileSystem:FileSystem"]) == 1
    assert doc["policies"] == []  # no policy violation
    assert not [r for r in doc["resources"] if r["type"].startswith("gcp:")]


def test_flat_aws_keys_of_the_old_layout_name_where_they_moved():
    """The aws section is split into sections: a stack file of the old, flat
    layout gets one line that names each old key and its new place, not a silent default."""
    (line,) = _problems({"cloud": "aws", "aws": {"jobTimeoutSeconds": 900, "gpuLimit": 4}})
    assert line.startswith("sdfleet:platform.aws: the aws section is split")
    assert "aws.jobTimeoutSeconds to aws.jobs.timeoutSeconds" in line
    assert "aws.gpuLimit to aws.gpu.limit" in line


def test_every_old_aws_key_maps_to_a_field_that_exists():
    from components.config import AWS_MOVED_KEYS, AwsConfig

    for old, new in AWS_MOVED_KEYS.items():
        section, key = new.split(".")
        fields = AwsConfig.model_fields[section].annotation.model_fields
        assert key in {f.alias for f in fields.values()}, (old, new)


# --- worker sizing: what a g5/g6.xlarge can hold, as Karpenter computes it ------------------

def test_default_worker_fits_the_smallest_node_of_each_family():
    """4 CPU + 16 GiB (the old default) plus the agent fit no xlarge: every job paid for a
    2xlarge. The default now fills the xlarge after Karpenter's own reservations."""
    from components.config.aws_instances import (
        allocatable,
        default_worker,
        fitting_types,
        kube_reserved_cpu_millis,
    )
    # Karpenter's arithmetic for a g5.xlarge: 16384 MiB - 7.5 % VM overhead (1229) - kube-reserved
    # (11 MiB x 58 pods + 255) - eviction (100); CPU 4000m - (60 + 10 + 5 + 5)m.
    assert kube_reserved_cpu_millis(4) == 80
    assert allocatable("g5.xlarge") == (3920, 16384 - 1229 - (11 * 58 + 255) - 100)
    assert not fitting_types(["g5", "g6"], "4", "16Gi") or \
        "g5.xlarge" not in fitting_types(["g5", "g6"], "4", "16Gi")
    cpu, memory = default_worker(["g5", "g6"])
    assert set(fitting_types(["g5", "g6"], cpu, memory)) >= {"g5.xlarge", "g6.xlarge"}
    assert 3000 <= int(cpu.rstrip("m")) < 4000 and 12 * 1024 <= int(memory.rstrip("Mi")) < 16 * 1024


def test_a_worker_no_allowed_node_can_hold_is_refused_naming_the_key():
    lines = _problems({"cloud": "aws", "aws": {"gpu": {"families": ["g5"]}, "runtimes": [
        {"name": "big", "memory": "200Gi"}]}})
    (line,) = [l for l in lines if "runtimes[0].memory" in l]
    assert "'200Gi'" in line and "no node of gpu.families (g5)" in line
    assert "leave cpu and memory unset" in line
