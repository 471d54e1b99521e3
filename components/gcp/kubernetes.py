"""A Kubernetes provider for the GKE cluster, authenticated by `gke-gcloud-auth-plugin`.

The kubeconfig holds no credential: the plugin asks gcloud for a short-lived token at use. It
is still exported as a secret because it names the endpoint and CA of a private cluster.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_kubernetes as k8s

from components.gcp.cluster import GkeCluster


def kubeconfig_for(cluster_name: str, endpoint: str, ca_certificate: str) -> str:
    context = f"gke_{cluster_name}"
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {
            "server": f"https://{endpoint}", "certificate-authority-data": ca_certificate}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
        "users": [{"name": context, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "gke-gcloud-auth-plugin",
            "installHint": "Install gke-gcloud-auth-plugin: "
                           "https://cloud.google.com/kubernetes-engine/docs/how-to/cluster-access-for-kubectl",
            "provideClusterInfo": True}}}],
    })


class ClusterProvider(pulumi.ComponentResource):
    """`sdfleet:gcp:ClusterProvider`: the kubeconfig (secret) and the provider built from it."""

    def __init__(self, name: str, cluster: GkeCluster, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:ClusterProvider", name, None, opts)
        self.kubeconfig = pulumi.Output.secret(pulumi.Output.all(
            cluster.name, cluster.endpoint, cluster.ca_certificate).apply(
                lambda args: kubeconfig_for(*args)))
        self.provider = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.kubeconfig, enable_server_side_apply=True,
            delete_unreachable=False, opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({"kubeconfig": self.kubeconfig})
