"""The GCP interactive platform (DESIGN.md section 2), assembled from small components."""

from __future__ import annotations

import pulumi

from components.config import StackConfig
from components.gcp.apis import ProjectApis
from components.gcp.cluster import GkeCluster
from components.gcp.kubernetes import ClusterProvider
from components.gcp.network import Network
from components.gcp.node_pools import GpuNodePool, SystemNodePool
from components.gcp.service_account import NODE_ROLES, ServiceAccount, account_id


class GcpPlatform(pulumi.ComponentResource):
    """`sdfleet:gcp:Platform`: everything one GCP stack stands up."""

    def __init__(self, name: str, stack: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:Platform", name, None, opts)
        p = stack.platform
        project, region = stack.gcp_project, stack.gcp_region
        labels = dict(p.labels)
        child = pulumi.ResourceOptions(parent=self)

        self.apis = ProjectApis(f"{name}-apis", project, opts=child)
        after_apis = pulumi.ResourceOptions(parent=self, depends_on=self.apis.services)

        self.network = Network(f"{name}", p.network, region, opts=after_apis)
        system_sa = ServiceAccount(f"{name}-system-nodes", account_id(name, "system-nodes"),
                                   "sdfleet system node pool", project, NODE_ROLES, opts=after_apis)
        self.cluster = GkeCluster(f"{name}-gke", p.cluster, p.network, self.network, project,
                                  region, system_sa.email, labels, opts=after_apis)
        self.system_pool = SystemNodePool(f"{name}-system-pool", p.system_pool, self.cluster.cluster,
                                          project, region, name, labels, system_sa, opts=child)
        self.gpu_pools = {
            pool.name: GpuNodePool(f"{name}-gpu-{pool.name}", pool, self.cluster.cluster, project,
                                   region, name, labels, opts=child)
            for pool in p.gpu_pools
        }
        self.k8s = ClusterProvider(f"{name}-cluster", self.cluster, opts=child)

        self.outputs = {
            "clusterName": self.cluster.name,
            "kubeconfig": self.k8s.kubeconfig,
            "gpuPools": [pool.name for pool in p.gpu_pools],
        }
        self.register_outputs(self.outputs)
