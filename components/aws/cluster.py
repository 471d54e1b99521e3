"""The EKS cluster, with `pulumi_aws` directly (pulumi-eks is a remote component: untestable
under mocks).

- API endpoint: always reachable privately; publicly only from `aws.cluster.publicAccessCidrs`, and
  not at all when that list is empty.
- Kubernetes secrets envelope-encrypted with a KMS key of the stack (rotation on).
- Every control-plane log type to CloudWatch, with a retention, so they never pile up.
- Access entries (API mode), no aws-auth ConfigMap.
- A managed system node group (Bottlerocket) for the controllers; GPU nodes come from
  Karpenter and never from a node group.
- EKS Pod Identity for every workload that calls AWS (components/aws/pod_identity.py), including
  the VPC CNI and the EFS CSI driver, so node roles hold no workload permissions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.network import Network
from components.aws.pod_identity import WorkloadIdentity, WorkloadIdentityArgs
from components.aws.tags import (
    POD_IDENTITY_ACTIONS,
    POD_IDENTITY_PRINCIPAL,
    allow,
    policy_json,
    tags_for,
    trust,
)
from components.config import AwsClusterConfig
from components.k8s.pods import SYSTEM_SELECTOR

CONTROL_PLANE_LOGS = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
LOG_RETENTION_DAYS = 30
SYSTEM_LABELS = SYSTEM_SELECTOR  # components/k8s/pods.py: every pod picks its pool by it

# AWS managed policies (partition `aws`).
NODE_POLICIES = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
    # The Bottlerocket control container (administrative access without SSH).
    "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
)
CNI_POLICY = "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy"
VPC_CNI_CONFIGURATION = json.dumps({"enableNetworkPolicy": "true"})
EFS_CSI_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonEFSCSIDriverPolicy"


def kubeconfig_for(cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that holds no credential: `aws eks get-token` mints one at each use."""
    context = f"eks_{cluster_name}"
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region,
                     "--output", "json"],
            "interactiveMode": "Never"}}}],
    })


def node_role(name: str, tags: dict[str, str], parent: pulumi.Resource) -> aws.iam.Role:
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(name, assume_role_policy=trust("ec2.amazonaws.com"),
                        description="sdfleet: EKS nodes", tags=tags, opts=child)
    for i, arn in enumerate(NODE_POLICIES):
        aws.iam.RolePolicyAttachment(f"{name}-{i}", role=role.name, policy_arn=arn, opts=child)
    return role


@dataclass(frozen=True)
class EksClusterArgs:
    config: AwsClusterConfig
    network: Network
    region: str
    labels: dict[str, str]


class EksCluster(pulumi.ComponentResource):
    """`sdfleet:aws:EksCluster`: KMS key, roles, log group, cluster, system nodes, add-ons."""

    def __init__(self, name: str, args: EksClusterArgs,
                 opts: pulumi.ResourceOptions | None = None):
        config, network, region, labels = args.config, args.network, args.region, args.labels
        super().__init__("sdfleet:aws:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.cluster_name = name
        self.region = region

        self.secrets_key = aws.kms.Key(
            f"{name}-secrets", description=f"sdfleet: {name} Kubernetes secrets",
            enable_key_rotation=True, deletion_window_in_days=30,
            tags=tags_for(labels, f"{name}-secrets"), opts=child)
        aws.kms.Alias(f"{name}-secrets", name=f"alias/{name}-secrets",
                      target_key_id=self.secrets_key.key_id, opts=child)

        self.role = aws.iam.Role(
            f"{name}-cluster", assume_role_policy=trust("eks.amazonaws.com",
                                                        ("sts:AssumeRole", "sts:TagSession")),
            description="sdfleet: EKS control plane", tags=tags_for(labels, f"{name}-cluster"),
            opts=child)
        cluster_policy = aws.iam.RolePolicyAttachment(
            f"{name}-cluster", role=self.role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonEKSClusterPolicy", opts=child)
        key_use = aws.iam.RolePolicy(
            f"{name}-cluster-kms", role=self.role.id,
            policy=policy_json([allow(["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey",
                                       "kms:CreateGrant", "kms:ListGrants"],
                                      [self.secrets_key.arn])]),
            opts=child)

        # Made before the cluster, so EKS writes into a group that has a retention.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs", name=f"/aws/eks/{name}/cluster", retention_in_days=LOG_RETENTION_DAYS,
            tags=tags_for(labels, f"{name}-logs"), opts=child)

        vpc_config = {"subnet_ids": network.private_subnet_ids, "endpoint_private_access": True,
                      "endpoint_public_access": bool(config.public_access_cidrs)}
        if config.public_access_cidrs:
            # Never EKS's default of 0.0.0.0/0: only the networks the config names.
            vpc_config["public_access_cidrs"] = list(config.public_access_cidrs)
        self.cluster = aws.eks.Cluster(
            name, name=name, version=config.kubernetes_version, role_arn=self.role.arn,
            vpc_config=vpc_config,
            access_config={"authentication_mode": "API",
                           "bootstrap_cluster_creator_admin_permissions": True},
            encryption_config={"provider": {"key_arn": self.secrets_key.arn},
                               "resources": ["secrets"]},
            enabled_cluster_log_types=CONTROL_PLANE_LOGS,
            upgrade_policy={"support_type": "STANDARD"},
            tags=tags_for(labels, name),
            opts=pulumi.ResourceOptions(parent=self,
                                        depends_on=[cluster_policy, key_use, self.log_group]))
        self.name = self.cluster.name
        self.endpoint = self.cluster.endpoint
        self.ca_data = self.cluster.certificate_authority.apply(lambda ca: ca.data)
        # EKS makes this group and puts it on the control plane and managed nodes; Karpenter's
        # nodes join it too, so nodes and control plane reach each other without new rules.
        self.security_group_id = self.cluster.vpc_config.apply(
            lambda vpc: vpc.cluster_security_group_id)

        # Installed before any workload so pods can get AWS credentials from their first start.
        self.pod_identity_agent = aws.eks.Addon(
            f"{name}-pod-identity-agent", cluster_name=self.cluster.name,
            addon_name="eks-pod-identity-agent", resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE", tags=tags_for(labels, name), opts=child)
        cni_role = aws.iam.Role(
            f"{name}-vpc-cni", assume_role_policy=_pod_identity_trust(),
            description="sdfleet: kube-system/aws-node (VPC CNI)",
            tags=tags_for(labels, f"{name}-vpc-cni"), opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-vpc-cni", role=cni_role.name, policy_arn=CNI_POLICY,
                                     opts=child)
        self.vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni", cluster_name=self.cluster.name, addon_name="vpc-cni",
            pod_identity_associations=[{"role_arn": cni_role.arn, "service_account": "aws-node"}],
            # NetworkPolicies are enforced only with the CNI's network policy agent on (EKS docs
            # "Restrict Pod network traffic with Kubernetes network policies": add-on
            # configuration `{"enableNetworkPolicy": "true"}`); off by default.
            configuration_values=VPC_CNI_CONFIGURATION,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            tags=tags_for(labels, name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pod_identity_agent]))
        aws.eks.Addon(f"{name}-kube-proxy", cluster_name=self.cluster.name, addon_name="kube-proxy",
                      resolve_conflicts_on_create="OVERWRITE",
                      resolve_conflicts_on_update="OVERWRITE", tags=tags_for(labels, name),
                      opts=child)

        self.system_node_role = node_role(f"{name}-system-nodes",
                                          tags_for(labels, f"{name}-system-nodes"), self)
        self.system_nodes = aws.eks.NodeGroup(
            f"{name}-system", cluster_name=self.cluster.name, node_role_arn=self.system_node_role.arn,
            subnet_ids=network.private_subnet_ids, ami_type="BOTTLEROCKET_x86_64",
            capacity_type="ON_DEMAND", instance_types=[config.system_instance_type],
            scaling_config={"desired_size": config.system_nodes, "min_size": config.system_nodes,
                            "max_size": config.system_nodes + 1},
            update_config={"max_unavailable": 1}, labels=SYSTEM_LABELS,
            tags=tags_for(labels, f"{name}-system"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.vpc_cni]))
        # CoreDNS and the EFS CSI controller are Deployments: they need nodes to become healthy.
        after_nodes = pulumi.ResourceOptions(parent=self, depends_on=[self.system_nodes])
        aws.eks.Addon(f"{name}-coredns", cluster_name=self.cluster.name, addon_name="coredns",
                      resolve_conflicts_on_create="OVERWRITE",
                      resolve_conflicts_on_update="OVERWRITE", tags=tags_for(labels, name),
                      opts=after_nodes)
        efs_role = aws.iam.Role(
            f"{name}-efs-csi", assume_role_policy=_pod_identity_trust(),
            description="sdfleet: kube-system/efs-csi-controller-sa (EFS CSI driver)",
            tags=tags_for(labels, f"{name}-efs-csi"), opts=child)
        aws.iam.RolePolicyAttachment(f"{name}-efs-csi", role=efs_role.name,
                                     policy_arn=EFS_CSI_POLICY, opts=child)
        self.efs_csi = aws.eks.Addon(
            f"{name}-efs-csi", cluster_name=self.cluster.name, addon_name="aws-efs-csi-driver",
            pod_identity_associations=[{"role_arn": efs_role.arn,
                                        "service_account": "efs-csi-controller-sa"}],
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            tags=tags_for(labels, name), opts=after_nodes)

        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            self.cluster.name, self.endpoint, self.ca_data).apply(
                lambda args: kubeconfig_for(*args, region)))
        self.register_outputs({"name": self.name, "kubeconfig": self.kubeconfig})

    def workload_identity(self, name: str, namespace: str, service_account: str,
                          statements: list[dict], labels: dict[str, str],
                          opts: pulumi.ResourceOptions | None = None) -> WorkloadIdentity:
        return WorkloadIdentity(name, WorkloadIdentityArgs(
            cluster_name=self.cluster.name, namespace=namespace, service_account=service_account,
            statements=statements, tags=tags_for(labels, name)), opts=opts)


def _pod_identity_trust() -> pulumi.Output[str]:
    return trust(POD_IDENTITY_PRINCIPAL, POD_IDENTITY_ACTIONS)
