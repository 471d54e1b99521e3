"""Karpenter: GPU nodes on demand, Spot first with On-Demand fallback, Bottlerocket NVIDIA.

- The controller runs on the system nodes with its own Pod Identity role; its policy names
  actions one by one and scopes them to this region, account and cluster.
- Spot interruption warnings, rebalance recommendations, scheduled maintenance and instance
  state changes reach it through an SQS queue fed by EventBridge, so it drains a node before
  AWS takes it away instead of losing the job mid-generation.
- One NodePool for GPU work: the configured instance families, both capacity types (Karpenter
  launches Spot while it is available and falls back to On-Demand), a GPU taint so only GPU
  workloads land there, a cap on GPUs. Only empty nodes are consolidated, so consolidation
  never stops a running job; drift, expiry and Spot interruptions drain the node, the agent
  gets SIGTERM, finishes what fits in the grace and puts the rest back without spending a
  try (images/queue-agent/sdfleet_agent/decision.py).
- The EC2NodeClass uses the Bottlerocket alias: Karpenter picks the NVIDIA variant for GPU
  instance types, which brings the driver and the NVIDIA device plugin. GPU time-slicing is
  refused by the config (Karpenter sizes nodes by physical GPUs, kubernetes-sigs/karpenter#729).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_kubernetes.helm.v3 import Release

from components.aws.cluster import EksCluster, node_role
from components.aws.network import Network
from components.aws.queues import queue_with_dead_letter
from components.aws.tags import allow, policy_json, tags_for
from components.config import AwsGpuConfig
from components.k8s.objects import KubeObject, meta
from components.k8s.pods import GPU_RESOURCE, SYSTEM_SELECTOR, NodePlacement, Taint, pool_selector

# The chart's OCI reference is the chart name, with no repositoryOpts.repo: given a repo,
# the provider resolves the chart through `<repo>/index.yaml`, which an OCI registry does not
# serve ("looks like oci://... is not a valid chart repository", pulumi/pulumi-kubernetes#2158,
# #2334; Karpenter's own install docs use `helm upgrade --install karpenter
# oci://public.ecr.aws/karpenter/karpenter --version ...`).
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
KARPENTER_VERSION = "1.8.1"
NAMESPACE = "kube-system"
SERVICE_ACCOUNT = "karpenter"
# Bottlerocket picks the NVIDIA variant itself for GPU instance types.
BOTTLEROCKET_ALIAS = "bottlerocket@latest"
# The taint our NodePool puts on the GPU nodes it launches (Karpenter sets none by itself).
GPU_TAINT = Taint(GPU_RESOURCE, "true", "NoSchedule")
NODE_POOL = "gpu"
GPU_POOL_LABEL = pool_selector(NODE_POOL)
# What a GPU pod of the batch variant gets: the pool and the taint tolerated. No
# `karpenter.sh/do-not-disrupt`: Karpenter's drain skips such pods, also when a Spot
# interruption deletes the node (Karpenter docs, "Disruption": "Pod-Level Controls"), so
# the agent would never get its SIGTERM and the job would wait out its lease. Running jobs
# are kept from consolidation by the NodePool instead (WhenEmpty, below).
GPU_PLACEMENT = NodePlacement.on(NODE_POOL, GPU_TAINT)
# Images of Stable Diffusion WebUIs are large: room for two of them plus the runtime cache.
DATA_VOLUME_GB = 200
INTERRUPTION_EVENTS = {
    "health": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {"source": ["aws.ec2"],
                          "detail-type": ["EC2 Spot Instance Interruption Warning"]},
    "rebalance": {"source": ["aws.ec2"],
                  "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "state-change": {"source": ["aws.ec2"],
                     "detail-type": ["EC2 Instance State-change Notification"]},
}


def controller_statements(region: str, account: pulumi.Input[str], cluster_arn: pulumi.Input[str],
                          cluster_name: str, node_role_arn: pulumi.Input[str],
                          queue_arn: pulumi.Input[str]) -> list[dict]:
    """The controller's policy, statement by statement as Karpenter v1.8.1's getting-started
    CloudFormation template scopes it (docs/decisions/2026-12-karpenter-controller-policy.md):
    what it creates must carry the cluster's tags in the request, what it uses, tags or
    deletes must carry them already, and instance profiles are its own (tagged) ones."""
    ec2 = pulumi.Output.format("arn:aws:ec2:{0}:{1}", region, account)
    cluster_tag = f"kubernetes.io/cluster/{cluster_name}"
    in_region = {"StringEquals": {"aws:RequestedRegion": region}}
    resource_owned = {"StringEquals": {f"aws:ResourceTag/{cluster_tag}": "owned"},
                      "StringLike": {"aws:ResourceTag/karpenter.sh/nodepool": "*"}}
    request_owned = {f"aws:RequestTag/{cluster_tag}": "owned",
                     "aws:RequestTag/eks:eks-cluster-name": cluster_name}
    created = [pulumi.Output.format("{0}:{1}/*", ec2, kind) for kind in (
        "fleet", "instance", "volume", "network-interface", "launch-template",
        "spot-instances-request")]
    profiles = pulumi.Output.format("arn:aws:iam::{0}:instance-profile/*", account)
    profile_owned = {f"aws:ResourceTag/{cluster_tag}": "owned",
                     "aws:ResourceTag/topology.kubernetes.io/region": region}
    return [
        # Launch from shared inputs: images, snapshots, security groups, subnets, reservations.
        allow(["ec2:RunInstances", "ec2:CreateFleet"],
              [pulumi.Output.format("arn:aws:ec2:{0}::{1}/*", region, kind)
               for kind in ("image", "snapshot")]
              + [pulumi.Output.format("{0}:{1}/*", ec2, kind)
                 for kind in ("security-group", "subnet", "capacity-reservation")]),
        # Launch from its own launch templates only.
        allow(["ec2:RunInstances", "ec2:CreateFleet"],
              [pulumi.Output.format("{0}:launch-template/*", ec2)], **resource_owned),
        # Create only what is tagged for this cluster in the same request.
        allow(["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"], created,
              StringEquals=request_owned,
              StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"}),
        allow(["ec2:CreateTags"], created,
              StringEquals={**request_owned,
                            "ec2:CreateAction": ["RunInstances", "CreateFleet",
                                                 "CreateLaunchTemplate"]},
              StringLike={"aws:RequestTag/karpenter.sh/nodepool": "*"}),
        # Later tags on its own instances: the node claim and name only.
        allow(["ec2:CreateTags"], [pulumi.Output.format("{0}:instance/*", ec2)],
              **resource_owned,
              StringEqualsIfExists={"aws:RequestTag/eks:eks-cluster-name": cluster_name},
              **{"ForAllValues:StringEquals": {
                  "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]}}),
        allow(["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
              [pulumi.Output.format("{0}:instance/*", ec2),
               pulumi.Output.format("{0}:launch-template/*", ec2)], **resource_owned),
        # Describe calls have no resource-level permissions; they are read-only and regional.
        allow(["ec2:DescribeAvailabilityZones", "ec2:DescribeImages", "ec2:DescribeInstances",
               "ec2:DescribeInstanceTypeOfferings", "ec2:DescribeInstanceTypes",
               "ec2:DescribeLaunchTemplates", "ec2:DescribeSecurityGroups",
               "ec2:DescribeSpotPriceHistory", "ec2:DescribeSubnets",
               "ec2:DescribeCapacityReservations", "ec2:DescribePlacementGroups"],
              ["*"], **in_region),
        allow(["ssm:GetParameter"],
              [pulumi.Output.format("arn:aws:ssm:{0}::parameter/aws/service/*", region)]),
        # The Pricing API has no resources; Karpenter reads on-demand prices to rank offers.
        allow(["pricing:GetProducts"], ["*"]),
        allow(["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"], [queue_arn]),
        allow(["iam:PassRole"], [node_role_arn],
              StringEquals={"iam:PassedToService": ["ec2.amazonaws.com"]}),
        # Instance profiles: only ones it creates with the cluster's and the node class's tags.
        allow(["iam:CreateInstanceProfile"], [profiles],
              StringEquals={**request_owned,
                            "aws:RequestTag/topology.kubernetes.io/region": region},
              StringLike={"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}),
        allow(["iam:TagInstanceProfile"], [profiles],
              StringEquals={**profile_owned, **request_owned,
                            "aws:RequestTag/topology.kubernetes.io/region": region},
              StringLike={"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*",
                          "aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}),
        allow(["iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
               "iam:DeleteInstanceProfile"], [profiles],
              StringEquals=profile_owned,
              StringLike={"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}),
        # Reading and listing (to garbage-collect its own) within this account's profiles.
        allow(["iam:GetInstanceProfile", "iam:ListInstanceProfiles"], [profiles]),
        allow(["eks:DescribeCluster"], [cluster_arn]),
    ]


@dataclass(frozen=True)
class KarpenterArgs:
    gpu: AwsGpuConfig
    cluster: EksCluster
    network: Network
    region: str
    account: pulumi.Input[str]
    labels: dict[str, str]
    k8s: pulumi.ProviderResource
    job_grace_seconds: int


class Karpenter(pulumi.ComponentResource):
    """`sdfleet:aws:Karpenter`: node role, controller identity, interruption queue, Helm
    release, EC2NodeClass and the GPU NodePool."""

    def __init__(self, name: str, args: KarpenterArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:Karpenter", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster_name = args.cluster.cluster_name

        self.node_role = node_role(f"{name}-nodes", tags_for(args.labels, f"{name}-nodes"), self)
        # Nodes Karpenter launches join the cluster through this access entry.
        node_access = aws.eks.AccessEntry(
            f"{name}-nodes", cluster_name=args.cluster.name, principal_arn=self.node_role.arn,
            type="EC2_LINUX", tags=tags_for(args.labels, f"{name}-nodes"), opts=child)

        # Like every queue of the stack it has a dead-letter queue: a notice Karpenter keeps
        # failing on is kept for a person instead of being retried until it expires.
        self.queue, self.dead_letter = queue_with_dead_letter(
            f"{name}-interruptions", f"{cluster_name}-karpenter", max_receive_count=5,
            labels=args.labels, parent=self,
            # A notice older than five minutes is about an instance that is already gone.
            message_retention_seconds=300)
        aws.sqs.QueuePolicy(
            f"{name}-interruptions", queue_url=self.queue.url,
            policy=policy_json([{
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": ["sqs:SendMessage"], "Resource": [self.queue.arn]}]),
            opts=child)
        for key, pattern in INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{key}", description=f"sdfleet: {key} events to Karpenter",
                event_pattern=json.dumps(pattern), tags=tags_for(args.labels, f"{name}-{key}"),
                opts=child)
            aws.cloudwatch.EventTarget(f"{name}-{key}", rule=rule.name, arn=self.queue.arn,
                                       opts=child)

        self.identity = args.cluster.workload_identity(
            f"{name}-controller", NAMESPACE, SERVICE_ACCOUNT,
            controller_statements(args.region, args.account, args.cluster.cluster.arn, cluster_name,
                                  self.node_role.arn, self.queue.arn),
            args.labels, opts=child)

        self.release = Release(
            f"{name}", name="karpenter", chart=KARPENTER_CHART, version=KARPENTER_VERSION,
            namespace=NAMESPACE,
            values={
                "settings": {"clusterName": cluster_name,
                             "interruptionQueue": self.queue.name},
                "serviceAccount": {"name": SERVICE_ACCOUNT},
                "replicas": 2,
                # Karpenter must not run on nodes it manages.
                "nodeSelector": dict(SYSTEM_SELECTOR),
                # CoreDNS may itself wait for nodes Karpenter has to make.
                "dnsPolicy": "Default",
                "controller": {"resources": {"requests": {"cpu": "500m", "memory": "512Mi"},
                                             "limits": {"memory": "1Gi"}}},
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s,
                                        depends_on=[self.identity, node_access]))
        after_crds = pulumi.ResourceOptions(parent=self, provider=args.k8s, depends_on=[self.release])

        node_class_spec = {
            "role": self.node_role.name,
            "amiSelectorTerms": [{"alias": BOTTLEROCKET_ALIAS}],
            "subnetSelectorTerms": [{"id": s.id} for s in args.network.private_subnets],
            "securityGroupSelectorTerms": [{"id": args.cluster.security_group_id}],
            "metadataOptions": {"httpEndpoint": "enabled", "httpTokens": "required",
                                # Pods reach AWS through Pod Identity, never the node's IMDS.
                                "httpPutResponseHopLimit": 1},
            "blockDeviceMappings": [
                {"deviceName": "/dev/xvda", "ebs": {"volumeSize": "8Gi", "volumeType": "gp3",
                                                    "encrypted": True}},
                {"deviceName": "/dev/xvdb", "ebs": {"volumeSize": f"{DATA_VOLUME_GB}Gi",
                                                    "volumeType": "gp3", "encrypted": True,
                                                    "throughput": 250}}],
            "tags": tags_for(args.labels, f"{cluster_name}-gpu"),
        }
        self.node_class = KubeObject(
            f"{name}-gpu-class", "karpenter.k8s.aws/v1", "EC2NodeClass", metadata=meta(NODE_POOL),
            spec=node_class_spec, opts=after_crds)

        self.node_pool = KubeObject(
            f"{name}-gpu-pool", "karpenter.sh/v1", "NodePool", metadata=meta(NODE_POOL),
            spec={
                "template": {
                    "metadata": {"labels": GPU_POOL_LABEL},
                    "spec": {
                        "nodeClassRef": {"group": "karpenter.k8s.aws", "kind": "EC2NodeClass",
                                         "name": NODE_POOL},
                        "requirements": [
                            {"key": "karpenter.k8s.aws/instance-family", "operator": "In",
                             "values": list(args.gpu.families)},
                            # Both allowed: Spot while there is capacity, On-Demand otherwise.
                            {"key": "karpenter.sh/capacity-type", "operator": "In",
                             "values": ["spot", "on-demand"]},
                            {"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]},
                            {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                        ],
                        "taints": [GPU_TAINT.manifest()],
                        # Draining waits this long for a job to finish before the node goes.
                        "terminationGracePeriod": f"{args.job_grace_seconds}s",
                        "expireAfter": "720h",
                    },
                },
                "limits": {GPU_RESOURCE: str(args.gpu.limit)},
                "disruption": {
                    # A node with a running job is not empty: never consolidated under it.
                    "consolidationPolicy": "WhenEmpty",
                    "consolidateAfter": "5m",
                    "budgets": [{"nodes": "10%"},
                                # Never replace nodes for drift all at once.
                                {"nodes": "1", "reasons": ["Drifted"]}],
                },
                "weight": 10,
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.k8s,
                                        depends_on=[self.release, self.node_class]))
        self.register_outputs({"queue": self.queue.name})
