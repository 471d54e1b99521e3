"""The GKE core on its registered inputs: network, cluster, node pools, service accounts."""

from __future__ import annotations

import json

from tests.program.conftest import assert_all_resolved

CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
FIREWALL = "gcp:compute/firewall:Firewall"
IAM_MEMBER = "gcp:projects/iAMMember:IAMMember"
ACCOUNT = "gcp:serviceaccount/account:Account"


def test_every_value_resolves_in_update_mode(dev_update):
    assert_all_resolved(dev_update)
    assert dev_update.outputs["clusterName"] == "sdfleet-gke"


def test_cluster_is_private_vpc_native_and_hardened(dev_plan):
    c = dev_plan.one(CLUSTER).inputs
    assert c["privateClusterConfig"]["enablePrivateNodes"] is True
    assert c["privateClusterConfig"]["masterIpv4CidrBlock"] == "172.16.0.0/28"
    assert c["workloadIdentityConfig"]["workloadPool"] == "example-sdfleet-project.svc.id.goog"
    assert c["enableShieldedNodes"] is True
    assert c["releaseChannel"]["channel"] == "REGULAR"
    assert c["networkingMode"] == "VPC_NATIVE"
    assert c["ipAllocationPolicy"] == {"clusterSecondaryRangeName": "pods",
                                       "servicesSecondaryRangeName": "services"}
    assert c["removeDefaultNodePool"] is True
    assert c["nodePoolDefaults"]["nodeConfigDefaults"]["gcfsConfig"]["enabled"] is True
    assert c["datapathProvider"] == "ADVANCED_DATAPATH"  # enforces NetworkPolicy
    assert c["nodeLocations"] == ["us-central1-a", "us-central1-b"]
    assert c["masterAuthorizedNetworksConfig"]["cidrBlocks"] == [
        {"cidrBlock": "203.0.113.0/24", "displayName": "example-office"},
        # the functions reach the private endpoint through their VPC connector
        {"cidrBlock": "10.31.0.0/28", "displayName": "functions-vpc-connector"}]
    assert c["masterAuthorizedNetworksConfig"]["gcpPublicCidrsAccessEnabled"] is False
    assert c["resourceLabels"]["team"] == "example-artists"


def test_default_pool_never_runs_as_default_compute_account(dev_update):
    c = dev_update.one(CLUSTER).inputs
    assert c["nodeConfig"]["serviceAccount"].startswith("sdfleet-system-nodes@")
    assert c["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"


def test_gpu_pools_are_tainted_autoscaled_with_drivers(dev_plan):
    l4 = dev_plan.one(NODE_POOL, "gpu-l4").inputs
    assert l4["nodeConfig"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]
    assert l4["autoscaling"]["totalMinNodeCount"] == 0
    assert l4["autoscaling"]["totalMaxNodeCount"] == 6
    (acc,) = l4["nodeConfig"]["guestAccelerators"]
    assert acc["type"] == "nvidia-l4" and acc["count"] == 1
    assert acc["gpuDriverInstallationConfig"]["gpuDriverVersion"] == "LATEST"
    assert "gpuSharingConfig" not in acc
    assert l4["nodeConfig"]["spot"] is True
    assert l4["nodeConfig"]["machineType"] == "g2-standard-8"
    assert l4["nodeConfig"]["labels"]["sdfleet.dev/pool"] == "l4"
    assert l4["nodeConfig"]["shieldedInstanceConfig"] == {"enableSecureBoot": True,
                                                          "enableIntegrityMonitoring": True}
    assert l4["nodeConfig"]["workloadMetadataConfig"]["mode"] == "GKE_METADATA"


def test_time_sharing_pool(dev_plan):
    t4 = dev_plan.one(NODE_POOL, "gpu-t4-shared").inputs
    (acc,) = t4["nodeConfig"]["guestAccelerators"]
    assert acc["gpuSharingConfig"] == {"gpuSharingStrategy": "TIME_SHARING",
                                       "maxSharedClientsPerGpu": 2}
    assert t4["nodeConfig"].get("spot") is False


def test_system_pool_is_untainted_and_always_on(dev_plan):
    system = dev_plan.one(NODE_POOL, "system-pool").inputs
    assert "taints" not in system["nodeConfig"]
    assert system["autoscaling"]["totalMinNodeCount"] >= 1


def test_each_pool_has_its_own_least_privilege_account(dev_update):
    pools = dev_update.of_type(NODE_POOL)
    accounts = {p.inputs["nodeConfig"]["serviceAccount"] for p in pools}
    assert len(accounts) == len(pools) == 3
    allowed = {"roles/logging.logWriter", "roles/monitoring.metricWriter", "roles/monitoring.viewer",
               "roles/stackdriver.resourceMetadata.writer", "roles/autoscaling.metricsWriter",
               # Image streaming with a custom node account (GKE docs, image streaming).
               "roles/serviceusage.serviceUsageConsumer"}
    node_members = [m for m in dev_update.of_type(IAM_MEMBER) if "-nodes-" in m.name]
    assert node_members and {m.inputs["role"] for m in node_members} == allowed
    for account in accounts:
        roles = {m.inputs["role"] for m in node_members if m.inputs["member"] == f"serviceAccount:{account}"}
        assert roles == allowed, account


def test_network_subnet_nat_and_firewalls(dev_plan):
    subnet = dev_plan.one("gcp:compute/subnetwork:Subnetwork").inputs
    assert subnet["ipCidrRange"] == "10.10.0.0/20" and subnet["privateIpGoogleAccess"] is True
    assert {r["rangeName"]: r["ipCidrRange"] for r in subnet["secondaryIpRanges"]} == {
        "pods": "10.16.0.0/14", "services": "10.20.0.0/20"}
    nat = dev_plan.one("gcp:compute/routerNat:RouterNat").inputs
    assert nat["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"
    for fw in dev_plan.of_type(FIREWALL):
        assert "0.0.0.0/0" not in fw.inputs.get("sourceRanges", []), fw.name
        for allow in fw.inputs.get("allows", []):
            assert allow["protocol"] != "all", fw.name
    health = dev_plan.one(FIREWALL, "health-checks").inputs
    assert sorted(health["sourceRanges"]) == ["130.211.0.0/22", "35.191.0.0/16"]


def test_kubeconfig_is_secret_and_uses_the_auth_plugin(dev_update):
    assert dev_update.outputs["kubeconfig"] == "[secret]"
    provider = dev_update.one("pulumi:providers:kubernetes")
    assert provider.inputs["kubeconfig"] == "[secret]"
    from components.gcp.kubernetes import kubeconfig_for
    config = json.loads(kubeconfig_for("c", "172.16.0.2", "Q0E="))
    assert config["users"][0]["user"]["exec"]["command"] == "gke-gcloud-auth-plugin"
    assert config["clusters"][0]["cluster"]["server"] == "https://172.16.0.2"


def test_children_are_parented_and_named_from_their_component(dev_plan):
    by_urn = {r.urn: r for r in dev_plan.resources}
    for r in dev_plan.resources:
        if r.type in ("sdfleet:gcp:Platform", "sdfleet:Preflight"):   # the two top-level parts
            assert r.parent.endswith("pulumi:pulumi:Stack::sdfleet-dev")
            continue
        assert r.parent in by_urn, f"{r.type} {r.name} is not parented to a component"
        parent = by_urn[r.parent]
        assert r.name.startswith(parent.name), (r.name, parent.name)


def test_gpu_pool_without_time_sharing_or_spot(plan, platform_of):
    def edit(p):
        p["gpuPools"] = [{"name": "a100", "machineType": "a2-highgpu-1g",
                          "accelerator": "nvidia-tesla-a100", "minNodes": 1, "maxNodes": 2}]
        p["fleet"]["gpuPool"] = "a100"
        p["fleet"]["maxReplicas"] = 2
        p["fleet"]["peakHours"]["buffer"] = 2
    result = plan(platform_of(edit), preview=False)
    assert_all_resolved(result)
    pool = result.one(NODE_POOL, "gpu-a100").inputs
    assert pool["autoscaling"]["totalMinNodeCount"] == 1
    assert pool["nodeConfig"]["guestAccelerators"][0]["type"] == "nvidia-tesla-a100"
