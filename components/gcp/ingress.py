"""The only way in: a global HTTPS load balancer (GKE Ingress) with IAP in front of the router.

Static IP, Google-managed certificate for the configured domain, HTTP redirected to HTTPS,
IAP enabled on the backend (Google-managed OAuth client), a timeout long enough for a
generation, health checks on the router's `/healthz`, and IAP access for the configured
members only (`roles/iap.httpsResourceAccessor`).
"""

from __future__ import annotations

import pulumi
import pulumi_gcp as gcp

from components.config import AccessConfig, WebuiConfig
from components.gcp.compute import ComputeResource
from components.k8s.objects import KubeObject, meta
from components.k8s.router import ROUTER_PORT


class IapIngress(pulumi.ComponentResource):
    """`sdfleet:gcp:IapIngress`."""

    def __init__(self, name: str, access: AccessConfig, webui: WebuiConfig, project: str,
                 labels: dict[str, str], namespace: str, service_name: str, k8s_opts: pulumi.ResourceOptions,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:IapIngress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kube = pulumi.ResourceOptions.merge(k8s_opts, child)
        self.backend_config_name = f"{name}-backend"

        self.address = ComputeResource("GlobalAddress", f"{name}-ip",
                                       {"name": f"{name}-ip", "project": project, "labels": labels},
                                       outputs=("address",), opts=child)
        self.certificate = KubeObject(
            f"{name}-cert", "networking.gke.io/v1", "ManagedCertificate",
            metadata=meta(f"{name}-cert", namespace), spec={"domains": [access.domain]}, opts=kube)
        self.backend_config = KubeObject(
            f"{name}-backend", "cloud.google.com/v1", "BackendConfig",
            metadata=meta(self.backend_config_name, namespace),
            spec={"iap": {"enabled": True},
                  "timeoutSec": webui.request_timeout_seconds,
                  "connectionDraining": {"drainingTimeoutSec": 60},
                  "healthCheck": {"type": "HTTP", "requestPath": "/healthz", "port": ROUTER_PORT,
                                  "checkIntervalSec": 10, "timeoutSec": 5}},
            opts=kube)
        self.frontend_config = KubeObject(
            f"{name}-frontend", "networking.gke.io/v1beta1", "FrontendConfig",
            metadata=meta(f"{name}-frontend", namespace),
            spec={"redirectToHttps": {"enabled": True, "responseCodeName": "MOVED_PERMANENTLY_DEFAULT"},
                  "sslPolicy": None}, opts=kube)
        self.ingress = KubeObject(
            f"{name}", "networking.k8s.io/v1", "Ingress",
            metadata=meta(name, namespace, annotations={
                "kubernetes.io/ingress.class": "gce",
                "kubernetes.io/ingress.global-static-ip-name": f"{name}-ip",
                "networking.gke.io/managed-certificates": f"{name}-cert",
                "networking.gke.io/v1beta1.FrontendConfig": f"{name}-frontend"}),
            spec={"defaultBackend": {"service": {"name": service_name, "port": {"number": 80}}}},
            opts=pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(
                depends_on=[self.certificate, self.backend_config, self.frontend_config])))

        # Project-level, like `gcloud iap web add-iam-policy-binding`: the IAP-protected
        # apps of this project are this platform's.
        self.accessors = [
            gcp.projects.IAMMember(f"{name}-access-{i}", project=project,
                                   role="roles/iap.httpsResourceAccessor", member=member, opts=child)
            for i, member in enumerate(access.members)
        ]
        self.url = f"https://{access.domain}"
        self.register_outputs({"url": self.url, "address": self.address.out("address")})
