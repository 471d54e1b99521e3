"""A first `pulumi up` on an empty project: what each resource must wait for, which APIs and
roles it needs, who may sign in, and the warnings while example values remain."""

from __future__ import annotations

import subprocess
import sys

import pytest

from components.config import ConfigError, parse_platform
from tools.plan import example_value_warnings
from tools.preview import ROOT

IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"


# --- item 7: Workload Identity needs the cluster's pool -------------------------------------------

def test_workload_identity_binding_waits_for_the_cluster(dev_update):
    cluster = dev_update.one("gcp:container/cluster:Cluster")
    binding = dev_update.one("gcp:serviceaccount/iAMMember:IAMMember", "router-wi")
    # The member names the cluster's pool, taken from the cluster's output: Pulumi orders it.
    assert cluster.urn in binding.property_dependencies["member"]
    assert binding.inputs["member"] == (
        f"serviceAccount:{cluster.inputs['workloadIdentityConfig']['workloadPool']}"
        "[sdfleet-system/sdfleet-router]")


# --- item 8: the VPC connector needs the VPC -----------------------------------------------------------

def test_vpc_connector_takes_the_network_from_the_vpc(dev_update):
    vpc = dev_update.one("gcp:compute/network:Network")
    connector = dev_update.one("gcp:vpcaccess/connector:Connector")
    assert vpc.urn in connector.property_dependencies["network"]
    assert connector.inputs["network"] == vpc.inputs["name"]


# --- item 10: what a gen2 function build needs ---------------------------------------------------------

def test_function_builds_have_their_roles_before_they_run(dev_update):
    build_sa = "serviceAccount:sdfleet-fn-fn-build@example-sdfleet-project.iam.gserviceaccount.com"
    grants = [m for m in dev_update.of_type(IAM_MEMBER) if m.inputs["member"] == build_sa]
    by_role = {m.inputs["role"]: m for m in grants}
    # Cloud Run "Configure the build service account" lists Storage Object Admin.
    assert set(by_role) == {"roles/logging.logWriter", "roles/storage.objectAdmin",
                            "roles/artifactregistry.writer"}
    # Bounded to the Google-made source bucket and image repository of gen2 builds.
    assert "condition" not in by_role["roles/logging.logWriter"].inputs
    assert by_role["roles/storage.objectAdmin"].inputs["condition"]["expression"] == \
        'resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")'
    assert by_role["roles/artifactregistry.writer"].inputs["condition"]["expression"] == (
        'resource.name.startsWith("projects/example-sdfleet-project/locations/us-central1/'
        'repositories/gcf-artifacts")')
    source = dev_update.one("gcp:storage/bucketIAMMember:BucketIAMMember", "build-reads-sources")
    for function in dev_update.of_type("gcp:cloudfunctionsv2/function:Function"):
        for grant in (*grants, source):
            assert grant.urn in function.dependencies, (function.name, grant.name)


# --- item 11: image streaming prerequisites -----------------------------------------------------------

def test_image_streaming_prerequisites(dev_update):
    apis = {s.inputs["service"] for s in dev_update.of_type("gcp:projects/service:Service")}
    assert "containerfilesystem.googleapis.com" in apis
    pools = dev_update.of_type("gcp:container/nodePool:NodePool")
    assert all(p.inputs["nodeConfig"]["gcfsConfig"] == {"enabled": True} for p in pools)
    for pool in pools:
        member = f"serviceAccount:{pool.inputs['nodeConfig']['serviceAccount']}"
        roles = {m.inputs["role"] for m in dev_update.of_type(IAM_MEMBER)
                 if m.inputs["member"] == member}
        assert "roles/serviceusage.serviceUsageConsumer" in roles, pool.name
        readers = [r for r in dev_update.of_type(
            "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
            if r.inputs["member"] == member]
        assert [r.inputs["role"] for r in readers] == ["roles/artifactregistry.reader"], pool.name


# --- item 16: who IAP's OAuth client can sign in --------------------------------------------------------

def _parse(access: dict):
    return parse_platform({"cloud": "gcp", "gpuPools": [
        {"name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4"}],
        "access": {"domain": "sd.corp.test", **access}},
        stack="t", gcp_project="p", gcp_region="us-central1")


def test_google_managed_client_refuses_members_outside_the_organization():
    with pytest.raises(ConfigError) as err:
        _parse({"organizationDomain": "corp.test",
                "members": ["user:a@corp.test", "user:b@gmail.com", "group:g@eu.corp.test",
                            "domain:other.test"]})
    lines = err.value.lines
    assert len(lines) == 2
    assert lines[0].startswith("sdfleet:platform.access.members[1]: 'user:b@gmail.com' is outside")
    assert lines[1].startswith("sdfleet:platform.access.members[3]: 'domain:other.test' is outside")
    assert all("oauthClientId" in line for line in lines)


def test_google_managed_client_needs_the_organization_domain():
    with pytest.raises(ConfigError) as err:
        _parse({"members": ["user:a@corp.test"]})
    assert err.value.lines[0].startswith("sdfleet:platform.access.organizationDomain: missing")


def test_custom_client_admits_outsiders():
    access = _parse({"members": ["user:b@gmail.com"],
                     "oauthClientId": "1-abc.apps.googleusercontent.com"}).platform.access
    assert access.oauth_client_id == "1-abc.apps.googleusercontent.com"


@pytest.mark.parametrize("access, text", [
    ({"backendServiceId": "123", "organizationDomain": "corp.test", "members": ["user:a@corp.test"]},
     "access.backendServiceId was removed"),
    ({"oauthClientId": "not-a-client", "members": ["user:a@corp.test"]},
     "access.oauthClientId"),
])
def test_access_errors_name_the_key(access, text):
    with pytest.raises(ConfigError) as err:
        _parse(access)
    assert text in "\n".join(err.value.lines)


# --- item 12: warnings while example values remain --------------------------------------------------------

def test_make_plan_warns_once_per_example_value_and_still_exits_0():
    proc = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "dev"], cwd=ROOT,
                          text=True, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("make plan: warning: ")]
    assert len(warnings) == 6, warnings
    joined = "\n".join(warnings)
    for needle in ("gcp:project 'example-sdfleet-project'", "access.domain 'sd.example.com'",
                   "access.organizationDomain 'example.com'", "access.members[0]",
                   "access.members[1]", "cluster.authorizedNetworks[0].cidr 203.0.113.0/24"):
        assert needle in joined


def _stack(**platform_edits):
    base = {"cloud": "gcp", "gpuPools": [
        {"name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4"}],
        "access": {"domain": "sd.corp.test", "organizationDomain": "corp.test",
                   "members": ["user:a@corp.test"]},
        "cluster": {"authorizedNetworks": [{"name": "office", "cidr": "100.64.10.0/24"}]}}
    base.update(platform_edits)
    return parse_platform(base, stack="t", gcp_project="my-project", gcp_region="us-central1")


def test_a_real_config_has_no_warnings():
    assert example_value_warnings(_stack()) == []


@pytest.mark.parametrize("cidr", ["192.0.2.0/24", "198.51.100.128/25", "203.0.113.7/32"])
def test_each_documentation_range_is_flagged(cidr):
    lines = example_value_warnings(_stack(cluster={"authorizedNetworks": [
        {"name": "x", "cidr": cidr}]}))
    assert len(lines) == 1 and "documentation range" in lines[0] and cidr in lines[0]


def test_no_authorized_network_means_the_deployer_cannot_reach_the_api():
    lines = example_value_warnings(_stack(cluster={}))
    assert len(lines) == 1 and "authorizedNetworks is empty" in lines[0]


# --- every API is enabled before anything uses it ---------------------------------------------------

def test_every_google_cloud_resource_waits_for_the_apis(dev_update):
    services = {r.urn for r in dev_update.of_type("gcp:projects/service:Service")}
    assert len(services) >= 15
    waiting = [r for r in dev_update.resources if r.custom
               and r.type.startswith(("gcp:", "command:")) and r.urn not in services
               and "Preflight" not in r.urn]   # the preflight runs first, before the APIs
    assert len(waiting) > 80
    late = [f"{r.type} {r.name}" for r in waiting if not services <= set(r.dependencies)]
    assert not late, "Google Cloud resources that do not wait for the APIs:\n" + "\n".join(late)


def test_project_number_is_read_after_the_resource_manager_api_is_on(monkeypatch, dev_config):
    """getProject reads through Cloud Resource Manager: the lookup waits for that API."""
    from tools import preview

    events: list[str] = []
    new_resource, call = preview.PlanMocks.new_resource, preview.PlanMocks.call

    def record_resource(self, args):
        events.append(f"resource {args.name}")
        return new_resource(self, args)

    def record_call(self, args):
        events.append(f"invoke {args.token}")
        return call(self, args)

    monkeypatch.setattr(preview.PlanMocks, "new_resource", record_resource)
    monkeypatch.setattr(preview.PlanMocks, "call", record_call)
    preview.run_program(dev_config, preview=False)
    lookup = events.index("invoke gcp:organizations/getProject:getProject")
    assert events.index("resource sdfleet-apis-cloudresourcemanager") < lookup


def test_cluster_runs_a_kubernetes_minor_its_agones_release_supports(dev_update):
    """Reads both pins from the plan: the Agones chart installed and the cluster's minor."""
    from components.config.versions import SUPPORTED_KUBERNETES_BY_AGONES
    agones = next(r.inputs for r in dev_update.of_type("kubernetes:helm.sh/v3:Release")
                  if r.inputs["chart"] == "agones")
    cluster = dev_update.one("gcp:container/cluster:Cluster").inputs
    assert agones["version"] in SUPPORTED_KUBERNETES_BY_AGONES, \
        f"Agones {agones['version']} has no supported-Kubernetes row in components/config/versions.py"
    assert cluster["minMasterVersion"] in SUPPORTED_KUBERNETES_BY_AGONES[agones["version"]]
    # The release channel would move the minor on its own: minor upgrades are held.
    (exclusion,) = cluster["maintenancePolicy"]["maintenanceExclusions"]
    assert exclusion["exclusionOptions"] == {"scope": "NO_MINOR_UPGRADES",
                                             "endTimeBehavior": "UNTIL_END_OF_SUPPORT"}
    assert "endTime" not in exclusion   # exactly one of endTime / endTimeBehavior
