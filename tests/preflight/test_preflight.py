"""`make preflight`: every ✗ path against fakes of the clouds' APIs (a local HTTP fake of
Google's REST reads; moto for IAM and EC2; botocore's Stubber for Service Quotas, whose EC2
quotas moto does not serve), and the command's exit codes."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from tests.preflight.gcp_fake import GcpFake
from tools.plan import _validate
from tools.preflight import aws as aws_preflight
from tools.preflight import gcp as gcp_preflight
from tools.preflight.report import FAIL, NOTE, PASS, exit_code
from tools.preview import read_stack_config

ROOT = Path(__file__).resolve().parents[2]


def _gcp_config(edit=None, **secrets):
    config = copy.deepcopy(read_stack_config("dev"))
    config.update({f"sdfleet:{k}": v for k, v in secrets.items()})
    if edit:
        edit(config["sdfleet:platform"])
    return _validate("dev", config)


@pytest.fixture
def fake():
    stack = _gcp_config()
    f = GcpFake(stack.gcp_project, stack.gcp_region)
    f.quotas = {"PREEMPTIBLE_NVIDIA_L4_GPUS": (8, 0), "NVIDIA_T4_GPUS": (4, 0),
                "PREEMPTIBLE_NVIDIA_A100_GPUS": (4, 0)}
    for zone in stack.platform.cluster.zones:
        f.machine_types[zone] = {"g2-standard-8", "n1-standard-8", "a2-highgpu-1g"}
        f.accelerators[zone] = {"nvidia-l4", "nvidia-tesla-t4", "nvidia-tesla-a100"}
    yield f
    f.close()


def _gcp_run(fake, stack=None, address="203.0.113.7"):
    import requests
    stack = stack or _gcp_config()
    return gcp_preflight.run(stack, gcp_preflight.GcpApi(requests.Session(), fake.root), address)


def _by_name(checks):
    return {c.name: c for c in checks}


def test_a_ready_gcp_project_passes(fake):
    checks = _gcp_run(fake)
    failures = [c.line() for c in checks if c.status == FAIL]
    assert failures == [] and exit_code(checks) == 0
    found = _by_name(checks)
    assert found["GPU quota PREEMPTIBLE_NVIDIA_L4_GPUS in us-central1"].status == PASS
    assert found["pool l4 in us-central1-b"].status == PASS
    assert found["cluster API from here"].status == PASS


def test_zero_gpu_quota_fails_with_the_quota_page(fake):
    fake.quotas = {"NVIDIA_T4_GPUS": (4, 0)}      # a new project: no L4 quota at all
    checks = _gcp_run(fake)
    quota = _by_name(checks)["GPU quota PREEMPTIBLE_NVIDIA_L4_GPUS in us-central1"]
    assert quota.status == FAIL and "no GPU node can start" in quota.detail
    assert "console.cloud.google.com/iam-admin/quotas" in quota.fix and "at least 6" in quota.fix
    assert exit_code(checks) == 2


def test_some_quota_is_a_note_not_a_failure(fake):
    fake.quotas["PREEMPTIBLE_NVIDIA_L4_GPUS"] = (4, 2)
    quota = _by_name(_gcp_run(fake))["GPU quota PREEMPTIBLE_NVIDIA_L4_GPUS in us-central1"]
    assert quota.status == NOTE and "2 free" in quota.detail


def test_a_machine_type_that_does_not_exist_fails(fake):
    stack = _gcp_config(lambda p: p["gpuPools"][0].update(machineType="g2-banana-999"))
    pool = _by_name(_gcp_run(fake, stack))["pool l4 in us-central1-a"]
    assert pool.status == FAIL and "g2-banana-999 does not exist in us-central1-a" in pool.detail
    assert "gcloud compute machine-types list --zones us-central1-a" in pool.fix


def test_an_accelerator_missing_in_a_zone_fails(fake):
    fake.accelerators["us-central1-b"] = {"nvidia-tesla-t4"}
    pool = _by_name(_gcp_run(fake))["pool l4 in us-central1-b"]
    assert pool.status == FAIL and "nvidia-l4 is not offered in us-central1-b" in pool.detail


def test_a_disabled_bootstrap_api_fails_with_the_command(fake):
    fake.enabled.discard("compute.googleapis.com")
    api = _by_name(_gcp_run(fake))["API compute.googleapis.com"]
    assert api.status == FAIL and api.fix.startswith("gcloud services enable compute.googleapis.com")


def test_no_organization_refuses_the_google_managed_client(fake):
    fake.parent = None
    org = _by_name(_gcp_run(fake))["organization"]
    assert org.status == FAIL and "Google-managed OAuth client works only inside one" in org.detail
    custom = _gcp_config(lambda p: p["access"].update(
        oauthClientId="123456789-abcdef.apps.googleusercontent.com"),
        iapOauthClientSecret={"secure": "v1:ciphertext"})
    assert _by_name(_gcp_run(fake, custom))["organization"].status == PASS


def test_deployer_outside_the_authorized_networks_fails(fake):
    reach = _by_name(_gcp_run(fake, address="198.18.0.10"))["cluster API from here"]
    assert reach.status == FAIL and "198.18.0.10 is outside" in reach.detail
    assert "198.18.0.10/32" in reach.fix


def test_a_domain_that_does_not_resolve_says_what_to_set(fake):
    domain = _by_name(_gcp_run(fake))["domain"]
    assert domain.status == NOTE and "ingressIp" in domain.fix


def test_the_command_exits_2_on_a_failure_and_names_it(fake, tmp_path):
    fake.quotas = {}
    env = {**os.environ, "SDFLEET_GCP_API_ROOT": fake.root,
           "SDFLEET_EGRESS_ECHO_URL": f"{fake.root}/echo"}
    proc = subprocess.run([sys.executable, "-m", "tools.preflight", "--stack", "dev"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "✗ GPU quota PREEMPTIBLE_NVIDIA_L4_GPUS in us-central1" in proc.stdout
    # The echo's address (198.18.0.10) is not in the example's documentation range.
    assert "✗ cluster API from here: 198.18.0.10 is outside" in proc.stdout


# --- AWS -------------------------------------------------------------------------------------

def _aws_config(edit=None):
    config = copy.deepcopy(read_stack_config("aws-dev"))
    if edit:
        edit(config["sdfleet:platform"])
    return _validate("aws-dev", config)


class _Session:
    """boto3 clients on moto, with Service Quotas answered by a Stubber."""

    def __init__(self, quotas: dict[str, float] | None):
        self.real = boto3.session.Session(region_name="us-east-1")
        self.quota_values = quotas

    def client(self, name, region_name=None):
        if name != "service-quotas":
            return self.real.client(name, region_name=region_name)
        client = self.real.client(name, region_name=region_name)
        if self.quota_values is None:
            return client   # moto: no EC2 quotas, so the read fails
        stub = Stubber(client)
        for code in ("L-DB2E81BA", "L-3819A6DF"):
            stub.add_response("get_service_quota", {"Quota": {
                "QuotaCode": code, "Value": self.quota_values[code], "ServiceCode": "ec2"}},
                {"ServiceCode": "ec2", "QuotaCode": code})
        stub.activate()
        return client


@pytest.fixture
def aws_account(monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


def _aws_run(quotas=None, address="203.0.113.9", edit=None):
    return aws_preflight.run(_aws_config(edit), _Session(quotas), address)


def _make_spot_role():
    """The role `aws iam create-service-linked-role --aws-service-name spot.amazonaws.com`
    makes (moto's own create_service_linked_role names it differently)."""
    boto3.client("iam").create_role(
        RoleName="AWSServiceRoleForEC2Spot", Path="/aws-service-role/spot.amazonaws.com/",
        AssumeRolePolicyDocument='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
                                 '"Principal": {"Service": "spot.amazonaws.com"}, '
                                 '"Action": "sts:AssumeRole"}]}')


def test_a_ready_aws_account_passes(aws_account):
    _make_spot_role()
    checks = _aws_run({"L-DB2E81BA": 64, "L-3819A6DF": 64})
    assert [c.line() for c in checks if c.status == FAIL] == []
    found = _by_name(checks)
    assert found["instance family g6 in us-east-1"].status == PASS
    assert "(a worker's node has 4)" in found[
        "quota Running On-Demand G and VT instances in us-east-1"].detail


def test_missing_spot_role_fails_with_the_command(aws_account):
    role = _by_name(_aws_run({"L-DB2E81BA": 64, "L-3819A6DF": 64}))["EC2 Spot service-linked role"]
    assert role.status == FAIL and "every node is On-Demand" in role.detail
    assert role.fix == "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com"


def test_zero_g_vcpus_fails_and_zero_spot_is_a_note(aws_account):
    _make_spot_role()
    checks = _by_name(_aws_run({"L-DB2E81BA": 0, "L-3819A6DF": 0}))
    on_demand = checks["quota Running On-Demand G and VT instances in us-east-1"]
    assert on_demand.status == FAIL and "no GPU node can start" in on_demand.detail
    assert "request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA" in on_demand.fix
    spot_only = _by_name(_aws_run({"L-DB2E81BA": 16, "L-3819A6DF": 0}))
    assert spot_only["quota All G and VT Spot Instance Requests in us-east-1"].status == NOTE


def test_unreadable_quotas_are_noted_with_the_command(aws_account):
    _make_spot_role()
    checks = _aws_run(None)
    notes = [c for c in checks if c.name.startswith("quota ")]
    assert notes and all(c.status == NOTE and "get-service-quota" in c.fix for c in notes)


def test_the_example_documentation_range_keeps_the_deployer_out(aws_account):
    _make_spot_role()
    reach = _by_name(_aws_run({"L-DB2E81BA": 64, "L-3819A6DF": 64}, address="198.18.0.10"))[
        "EKS API from here"]
    assert reach.status == FAIL and "203.0.113.0/24" in reach.detail
    private = _by_name(_aws_run({"L-DB2E81BA": 64, "L-3819A6DF": 64},
                                edit=lambda p: p["aws"]["cluster"].update(publicAccessCidrs=[])))
    assert private["EKS API from here"].status == FAIL


def test_a_family_the_region_lacks_fails(aws_account):
    _make_spot_role()
    ec2 = boto3.client("ec2", region_name="us-east-1")
    offered = {o["InstanceType"] for o in ec2.describe_instance_type_offerings(
        LocationType="region")["InstanceTypeOfferings"]}
    assert not any(t.startswith("p3.") for t in offered)   # moto's us-east-1 data has no p3
    checks = _by_name(_aws_run({"L-DB2E81BA": 64, "L-3819A6DF": 64},
                               edit=lambda p: p["aws"]["gpu"].update(families=["g6", "p3"])))
    assert checks["instance family p3 in us-east-1"].status == FAIL
    assert checks["instance family g6 in us-east-1"].status == PASS


# --- the first step of `pulumi up` -----------------------------------------------------------

@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_pulumi_up_runs_the_preflight_before_anything_else(stack):
    from components.preflight import preflight_command
    from tools.preview import run_program
    config = read_stack_config(stack)
    result = run_program(copy.deepcopy(config), stack=stack, preview=True)
    (step,) = [r for r in result.resources if r.name.endswith("-preflight-check")]
    assert result.by_urn(step.parent).type == "sdfleet:Preflight"
    assert step.inputs["create"] == preflight_command(stack)
    assert step.inputs["create"].split()[1:] == ["-m", "tools.preflight", "--stack", stack]
    assert len(step.inputs["triggers"]) == 1   # the config's hash: a changed config checks again
    custom = [r for r in result.resources if r.custom and r is not step
              and not r.type.startswith("pulumi:providers:")]
    assert custom and all(step.urn in r.dependencies for r in custom), [
        r.name for r in custom if step.urn not in r.dependencies][:5]
    # Skippable.
    off = copy.deepcopy(config)
    off["sdfleet:platform"]["preflight"] = False
    assert not [r for r in run_program(off, stack=stack, preview=True).resources
                if "preflight" in r.name]
