"""Each resource policy: a compliant resource passes, a violating one is reported (with its level)."""

from __future__ import annotations

import copy

import pytest

from tests.policy.resources import res, violations
from tools.preview import UNKNOWN_MARK

GPU_POOL = {
    "name": "gpu-l4", "location": "us-central1",
    "autoscaling": {"totalMinNodeCount": 0, "totalMaxNodeCount": 6, "locationPolicy": "ANY"},
    "nodeConfig": {
        "machineType": "g2-standard-8", "spot": True,
        "guestAccelerators": [{"type": "nvidia-l4", "count": 1}],
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}],
        "workloadMetadataConfig": {"mode": "GKE_METADATA"},
        "shieldedInstanceConfig": {"enableSecureBoot": True, "enableIntegrityMonitoring": True},
        "resourceLabels": {"app": "sdfleet"},
    },
}
CLUSTER = {
    "name": "sdfleet-gke", "location": "us-central1",
    "privateClusterConfig": {"enablePrivateNodes": True, "enablePrivateEndpoint": False,
                             "masterIpv4CidrBlock": "172.16.0.0/28"},
    "workloadIdentityConfig": {"workloadPool": "example.svc.id.goog"},
    "enableShieldedNodes": True, "removeDefaultNodePool": True, "initialNodeCount": 1,
    "nodeConfig": {"workloadMetadataConfig": {"mode": "GKE_METADATA"}},
    "resourceLabels": {"app": "sdfleet"},
}


def changed(base: dict, path: str, value) -> dict:
    """A deep copy of `base` with the dotted `path` set to `value` (None deletes it)."""
    out = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


POOL = "gcp:container/nodePool:NodePool"
GKE = "gcp:container/cluster:Cluster"
FN2 = "gcp:cloudfunctionsv2/function:Function"
FW = "gcp:compute/firewall:Firewall"
REDIS = "gcp:redis/instance:Instance"
SVC = "kubernetes:core/v1:Service"
HELM = "kubernetes:helm.sh/v3:Release"
KARPENTER = "kubernetes:karpenter.sh/v1:NodePool"
REDIS_OK = {"tier": "STANDARD_HA", "memorySizeGb": 1, "authEnabled": True,
            "transitEncryptionMode": "SERVER_AUTHENTICATION", "labels": {"app": "sdfleet"}}
FUNCTION_OK = {"name": "allocator", "labels": {"app": "sdfleet"},
               "serviceConfig": {"ingressSettings": "ALLOW_INTERNAL_ONLY"}}
FIREWALL_OK = {"direction": "INGRESS", "sourceRanges": ["35.191.0.0/16", "130.211.0.0/22"],
               "allows": [{"protocol": "tcp", "ports": ["8080"]}]}
AGONES_OK = {"chart": "agones", "version": "1.50.0", "values": {"agones": {
    "allocator": {"service": {"serviceType": "ClusterIP"}, "disableMTLS": False},
    "ping": {"install": False}}}}
KARPENTER_GPU = {"apiVersion": "karpenter.sh/v1", "kind": "NodePool", "spec": {
    "template": {"spec": {
        "requirements": [{"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                          "values": ["g5", "g6"]}],
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]}},
    "limits": {"nvidia.com/gpu": "8"}}}
EKS_OK = {"vpcConfig": {"endpointPrivateAccess": True, "endpointPublicAccess": False},
          "tags": {"app": "sdfleet"}}
MEMBER = "gcp:cloudrunv2/serviceIamMember:ServiceIamMember"

# (policy, type, compliant inputs, violating inputs, words the violation message contains)
CASES = [
    ("no-public-invokers", MEMBER,
     {"role": "roles/run.invoker", "member": "serviceAccount:router@p.iam.gserviceaccount.com"},
     {"role": "roles/run.invoker", "member": "allUsers"}, "allUsers"),
    ("no-public-invokers", "gcp:cloudfunctionsv2/functionIamBinding:FunctionIamBinding",
     {"role": "roles/cloudfunctions.invoker", "members": [UNKNOWN_MARK]},
     {"role": "roles/cloudfunctions.invoker", "members": ["user:a@example.com", "allAuthenticatedUsers"]},
     "allAuthenticatedUsers"),
    ("no-public-invokers", "gcp:storage/bucketIAMPolicy:BucketIAMPolicy",
     {"policyData": '{"bindings": [{"role": "roles/storage.objectViewer", "members": ["group:a@example.com"]}]}'},
     {"policyData": '{"bindings": [{"role": "roles/storage.objectViewer", "members": ["allUsers"]}]}'},
     "allUsers"),
    ("no-public-invokers", "gcp:storage/bucketACL:BucketACL",
     {"roleEntities": ["OWNER:project-owners-123"]}, {"predefinedAcl": "publicRead"}, "publicRead"),
    ("functions-internal-ingress", FN2, FUNCTION_OK,
     changed(FUNCTION_OK, "serviceConfig.ingressSettings", None), "ALLOW_ALL"),
    ("functions-internal-ingress", "gcp:cloudfunctions/function:Function",
     {"ingressSettings": "ALLOW_INTERNAL_ONLY"}, {"ingressSettings": "ALLOW_INTERNAL_AND_GCLB"},
     "ALLOW_INTERNAL_AND_GCLB"),
    ("memorystore-auth-and-tls", REDIS, REDIS_OK, changed(REDIS_OK, "authEnabled", None), "authEnabled"),
    ("memorystore-auth-and-tls", REDIS, REDIS_OK,
     changed(REDIS_OK, "transitEncryptionMode", "DISABLED"), "transitEncryptionMode"),
    ("memorystore-auth-and-tls", "gcp:memorystore/instance:Instance",
     {"authorizationMode": "IAM_AUTH", "transitEncryptionMode": "SERVER_AUTHENTICATION"},
     {"authorizationMode": "AUTH_DISABLED", "transitEncryptionMode": "SERVER_AUTHENTICATION"},
     "authorizationMode"),
    ("gke-private-nodes", GKE, CLUSTER,
     changed(CLUSTER, "privateClusterConfig.enablePrivateNodes", False), "enablePrivateNodes"),
    ("gke-private-nodes", POOL, GPU_POOL,
     changed(GPU_POOL, "networkConfig.enablePrivateNodes", False), "external IPs"),
    ("gke-workload-identity", GKE, CLUSTER, changed(CLUSTER, "workloadIdentityConfig", None),
     "workloadPool"),
    ("gke-workload-identity", POOL, GPU_POOL,
     changed(GPU_POOL, "nodeConfig.workloadMetadataConfig.mode", "GCE_METADATA"), "GKE_METADATA"),
    ("gke-shielded-nodes", GKE, CLUSTER, changed(CLUSTER, "enableShieldedNodes", False),
     "enableShieldedNodes"),
    ("gpu-pools-tainted", POOL, GPU_POOL, changed(GPU_POOL, "nodeConfig.taints", []), "taint"),
    # An accelerator-optimized machine type has GPUs even without guestAccelerators.
    ("gpu-pools-tainted", POOL, changed(GPU_POOL, "nodeConfig.guestAccelerators", None),
     changed(changed(GPU_POOL, "nodeConfig.guestAccelerators", None), "nodeConfig.taints", None), "taint"),
    ("gpu-pools-tainted", KARPENTER, KARPENTER_GPU,
     changed(KARPENTER_GPU, "spec.template.spec.taints", []), "NoSchedule"),
    ("gpu-pools-tainted", "aws:eks/nodeGroup:NodeGroup",
     {"instanceTypes": ["g5.xlarge"], "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 0},
      "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NO_SCHEDULE"}]},
     {"instanceTypes": ["g5.xlarge"], "scalingConfig": {"minSize": 0, "maxSize": 2, "desiredSize": 0}},
     "taint"),
    ("gpu-pools-autoscaled", POOL, GPU_POOL,
     changed(changed(GPU_POOL, "autoscaling", None), "nodeCount", 2), "not autoscaled"),
    ("gpu-pools-autoscaled", KARPENTER, KARPENTER_GPU, changed(KARPENTER_GPU, "spec.limits", None),
     "without bound"),
    ("gpu-pools-autoscaled", "aws:eks/nodeGroup:NodeGroup",
     {"instanceTypes": ["g6.xlarge"], "scalingConfig": {"minSize": 0, "maxSize": 4, "desiredSize": 0}},
     {"instanceTypes": ["g6.xlarge"], "scalingConfig": {"minSize": 2, "maxSize": 2, "desiredSize": 2}},
     "fixed size"),
    ("no-open-ingress", FW, FIREWALL_OK, changed(FIREWALL_OK, "sourceRanges", ["0.0.0.0/0"]),
     "0.0.0.0/0"),
    # No source at all means 0.0.0.0/0 to GCP.
    ("no-open-ingress", FW, changed(FIREWALL_OK, "sourceRanges", ["10.10.0.0/20"]),
     changed(FIREWALL_OK, "sourceRanges", None), "0.0.0.0/0"),
    # A deny rule from anywhere closes things; an allow rule opens them.
    ("no-open-ingress", FW,
     {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"], "denies": [{"protocol": "tcp"}]},
     {"direction": "INGRESS", "sourceRanges": ["0.0.0.0/0"], "allows": [{"protocol": "udp", "ports": ["7000-8000"]}]},
     "0.0.0.0/0"),
    ("no-open-ingress", "aws:ec2/securityGroup:SecurityGroup",
     {"ingress": [{"fromPort": 443, "toPort": 443, "protocol": "tcp", "cidrBlocks": ["10.40.0.0/16"]}]},
     {"ingress": [{"fromPort": 22, "toPort": 22, "protocol": "tcp", "cidrBlocks": ["0.0.0.0/0"]}]},
     "0.0.0.0/0"),
    ("no-open-ingress", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
     {"cidrIpv4": "10.40.0.0/16", "ipProtocol": "tcp"}, {"cidrIpv6": "::/0", "ipProtocol": "-1"}, "::/0"),
    ("no-load-balancer-services", SVC,
     {"spec": {"type": "ClusterIP", "ports": [{"port": 80}]}},
     {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}, "LoadBalancer"),
    ("no-load-balancer-services", HELM, AGONES_OK,
     changed(AGONES_OK, "values.agones.ping", None), "agones.ping.http.serviceType"),
    # Agones' chart default makes the allocator a LoadBalancer.
    ("no-load-balancer-services", HELM, AGONES_OK,
     changed(AGONES_OK, "values.agones.allocator.service", None), "agones.allocator.service.serviceType"),
    ("no-load-balancer-services", "kubernetes:helm.sh/v3:Release",
     {"chart": "keda", "values": {"service": {"type": "ClusterIP"}}},
     {"chart": "ingress-nginx", "values": {"controller": {"service": {"type": "LoadBalancer"}}}},
     "controller.service.type"),
    ("agones-allocator-mtls", HELM,
     changed(AGONES_OK, "values.agones.allocator.service.serviceType", "LoadBalancer"),
     changed(changed(AGONES_OK, "values.agones.allocator.service.serviceType", "LoadBalancer"),
             "values.agones.allocator.disableMTLS", True), "disableMTLS"),
    ("no-primitive-roles", "gcp:projects/iAMMember:IAMMember",
     {"role": "roles/logging.logWriter", "member": "serviceAccount:n@p.iam.gserviceaccount.com"},
     {"role": "roles/editor", "member": "serviceAccount:n@p.iam.gserviceaccount.com"}, "roles/editor"),
    ("no-primitive-roles", "gcp:projects/iAMPolicy:IAMPolicy",
     {"policyData": '{"bindings": [{"role": "roles/viewer", "members": ["group:a@example.com"]}]}'},
     {"policyData": '{"bindings": [{"role": "roles/owner", "members": ["group:a@example.com"]}]}'},
     "roles/owner"),
    ("eks-endpoint-restricted", "aws:eks/cluster:Cluster", EKS_OK,
     changed(EKS_OK, "vpcConfig.endpointPublicAccess", None), "0.0.0.0/0"),
    ("eks-endpoint-restricted", "aws:eks/cluster:Cluster",
     changed(changed(EKS_OK, "vpcConfig.endpointPublicAccess", True), "vpcConfig.publicAccessCidrs",
             ["203.0.113.0/24"]),
     changed(changed(EKS_OK, "vpcConfig.endpointPublicAccess", True), "vpcConfig.publicAccessCidrs",
             ["0.0.0.0/0"]), "0.0.0.0/0"),
    ("cost-labels", REDIS, REDIS_OK, changed(REDIS_OK, "labels", None), "labels"),
    ("cost-labels", "aws:sqs/queue:Queue", {"tags": {"app": "sdfleet"}, "redrivePolicy": UNKNOWN_MARK},
     {"redrivePolicy": UNKNOWN_MARK}, "tags"),
]


@pytest.mark.parametrize("policy,type_,good,bad,words", CASES,
                         ids=[f"{c[0]}:{c[1].split(':')[-1]}:{i}" for i, c in enumerate(CASES)])
def test_compliant_passes_and_violating_is_reported(policy, type_, good, bad, words):
    assert violations(policy, res(type_, "good", good)) == []
    found = violations(policy, res(type_, "bad", bad))
    assert found, f"{policy} missed a violating {type_}"
    assert all(v["resource"].endswith("::bad") for v in found)
    assert any(words in v["message"] for v in found), found
    expected_level = "advisory" if policy == "cost-labels" else "mandatory"
    assert {v["level"] for v in found} == {expected_level}


def test_every_policy_has_a_case_here_or_in_the_stack_tests():
    from policy.sdfleet_policies import POLICIES

    stack_policies = {"s3-public-access-blocked", "s3-encrypted", "sqs-dead-letter-queue",
                      "gpu-node-budget"}
    covered = {c[0] for c in CASES} | stack_policies
    assert {p.name for p in POLICIES} == covered


def test_resources_of_other_types_are_left_alone():
    # A LoadBalancer-looking value on a type the policy does not own is not its business.
    assert violations("no-load-balancer-services",
                      res("gcp:compute/firewall:Firewall", "fw", {"type": "LoadBalancer"})) == []
    assert violations("functions-internal-ingress", res(REDIS, "r", {})) == []


def test_gpu_policies_ignore_pools_without_gpus():
    system = changed(changed(changed(GPU_POOL, "nodeConfig.guestAccelerators", None),
                             "nodeConfig.machineType", "e2-standard-4"), "nodeConfig.taints", None)
    system = changed(system, "autoscaling", None)
    assert violations("gpu-pools-tainted", res(POOL, "system", system)) == []
    assert violations("gpu-pools-autoscaled", res(POOL, "system", system)) == []


def test_provider_default_labels_count_as_labels():
    provider = res("pulumi:providers:aws", "tagged",
                   {"region": "us-east-1", "defaultTags": '{"tags":{"app":"sdfleet"}}'})
    queue = res("aws:sqs/queue:Queue", "q", {"redrivePolicy": UNKNOWN_MARK}, provider=provider)
    assert violations("cost-labels", provider, queue) == []


def test_required_label_keys_come_from_the_stack_config(stack_config_of):
    config = stack_config_of(labels={"app": "sdfleet", "cost-center": "cc-1"})
    found = violations("cost-labels", res(REDIS, "r", REDIS_OK), stack_config=config)
    assert [v["message"] for v in found] == ["cost-allocation labels lack cost-center"]


def test_unknown_values_are_reported_as_unevaluable_not_as_passing():
    # Helm values only known after deployment: CrossGuard says it cannot check, as advisory.
    found = violations("agones-allocator-mtls",
                       res(HELM, "agones", {"chart": "agones", "values": UNKNOWN_MARK}))
    assert [(v["level"], "can't run during preview" in v["message"]) for v in found] == \
        [("advisory", True)]


def test_eks_public_cidrs_must_be_the_listed_ones(stack_config_of):
    config = stack_config_of(cloud="aws", aws={"cluster": {"publicAccessCidrs": ["203.0.113.0/24"]}})
    cluster = changed(changed(EKS_OK, "vpcConfig.endpointPublicAccess", True),
                      "vpcConfig.publicAccessCidrs", ["198.51.100.0/24"])
    found = violations("eks-endpoint-restricted", res("aws:eks/cluster:Cluster", "eks", cluster),
                       stack_config=config)
    assert len(found) == 1 and "198.51.100.0/24" in found[0]["message"]
