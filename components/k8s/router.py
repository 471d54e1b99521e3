"""The per-user router (images/router) on the system pool, behind the IAP Ingress.

Several replicas with a PodDisruptionBudget; a Service whose NEG the load balancer targets
directly; Workload Identity for its Google identity (invoke the allocator, read the Redis
secrets, mounted by the GKE Secret Manager add-on). Two containers: nginx + Lua, and the
loopback verifier of IAP assertions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi

from components.config import WebuiConfig
from components.k8s.image_env import ROUTER as ROUTER_ENV
from components.k8s.objects import KubeObject, meta
from components.k8s.pods import (
    APP_LABEL,
    IMAGE_PYTHON,
    LOOPBACK,
    ROUTER_PORT,
    ROUTER_UID,
    VERIFIER_PORT,
    NodePlacement,
    env_list,
    pod_security,
    restricted_container,
)

SECRETS_DIR = "/var/run/sdfleet/redis"
APP = {APP_LABEL: "router"}
# The verifier runs with the image's own interpreter (pods.IMAGE_PYTHON): its libraries live in
# the image's virtualenv only; the system `python3` of the OpenResty base image has none.
# GKE's Secret Manager add-on: the SecretProviderClass is the Secrets Store CSI driver's own
# resource (`secrets-store.csi.x-k8s.io/v1`, `provider: gke`); only the pod's CSI volume
# names the add-on's driver. Google Cloud docs, "Use Secret Manager add-on with GKE"
# (cloud.google.com/secret-manager/docs/secret-manager-managed-csi-component).
SECRET_PROVIDER_CLASS_API = "secrets-store.csi.x-k8s.io/v1"
SECRETS_CSI_DRIVER = "secrets-store-gke.csi.k8s.io"
# Where a global external Application Load Balancer's proxies (GFEs) and health checks come
# from; with container-native load balancing (NEGs) they connect to the pod IPs directly.
# Google Cloud docs, "Firewall rules" (cloud.google.com/load-balancing/docs/firewall-rules):
# "Global external Application Load Balancer: health check ranges 35.191.0.0/16,
# 130.211.0.0/22; GFE proxy ranges: same as health check ranges if the backends are
# zonal NEGs (GCE_VM_IP_PORT)".
LOAD_BALANCER_RANGES = ("35.191.0.0/16", "130.211.0.0/22")


def router_ingress_policy(pod_labels: dict, port: int) -> dict:
    """Only the load balancer reaches the router: IAP is in front of that path
    alone, so a pod or VM inside the VPC can never skip it. Kubelet probes come from the
    node, which GKE Dataplane V2 always admits."""
    return {"podSelector": {"matchLabels": pod_labels}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": cidr}} for cidr in LOAD_BALANCER_RANGES],
                         "ports": [{"protocol": "TCP", "port": port}]}]}
# The router's /tmp (rendered nginx.conf, pid, temporary files): in memory, small. Uploads
# are streamed to the pod, never buffered here (images/router README, "Uploads").
TMP_SIZE_MIB = 64


@dataclass(frozen=True)
class RouterSettings:
    """Everything the router takes: the WebUI settings it proxies for, where it runs, and the
    addresses of what it talks to."""

    webui: WebuiConfig
    image: str
    namespace: str
    ksa_name: str
    gsa_annotation: dict
    redis_host: pulumi.Input[str]
    redis_port: pulumi.Input[int]
    redis_auth_secret: pulumi.Input[str]   # Secret Manager resource names
    redis_ca_secret: pulumi.Input[str]
    allocator_url: pulumi.Input[str]
    iap_audience: pulumi.Input[str]
    neg_name: str  # the standalone NEG of the router Service (components/gcp/load_balancer.py)
    # The system nodes, as the cloud layer labels them.
    placement: NodePlacement


class Router(pulumi.ComponentResource):
    """`sdfleet:k8s:Router`."""

    def __init__(self, name: str, s: RouterSettings,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:Router", name, None, opts)
        webui = s.webui
        child = pulumi.ResourceOptions(parent=self)
        ns = s.namespace
        self.service_name = name

        self.service_account = KubeObject(
            f"{name}-ksa", "v1", "ServiceAccount",
            metadata=meta(s.ksa_name, ns, annotations=s.gsa_annotation), opts=child)
        self.secrets = KubeObject(
            f"{name}-redis-secrets", SECRET_PROVIDER_CLASS_API, "SecretProviderClass",
            metadata=meta(f"{name}-redis", ns),
            spec={"provider": "gke", "parameters": {"secrets": pulumi.Output.all(
                s.redis_auth_secret, s.redis_ca_secret).apply(lambda names: json.dumps([
                    {"resourceName": f"{names[0]}/versions/latest", "path": "auth"},
                    {"resourceName": f"{names[1]}/versions/latest", "path": "ca.pem"}]))}},
            opts=child)

        e = ROUTER_ENV  # names from the image (images/router/sdfleet_router/env.py)
        env = {
            e.ROUTER_LISTEN: str(ROUTER_PORT),
            e.REDIS_HOST: s.redis_host,
            e.REDIS_PORT: pulumi.Output.from_input(s.redis_port).apply(str),
            e.REDIS_TLS: "true",
            e.REDIS_CA_FILE: f"{SECRETS_DIR}/ca.pem",
            e.REDIS_PASSWORD_FILE: f"{SECRETS_DIR}/auth",
            e.REDIS_PREFIX: "sdfleet:",
            # The function's route, and its base URL as the OIDC audience (Cloud Run checks it).
            e.ALLOCATOR_URL: pulumi.Output.from_input(s.allocator_url).apply(lambda u: f"{u}/allocate"),
            e.ALLOCATOR_AUDIENCE: s.allocator_url,
            e.VERIFIER_ADDR: f"{LOOPBACK}:{VERIFIER_PORT}",
            e.PROXY_READ_TIMEOUT: f"{webui.request_timeout_seconds}s",
            e.PROXY_SEND_TIMEOUT: f"{webui.request_timeout_seconds}s",
            e.CLIENT_MAX_BODY_SIZE: f"{webui.max_upload_mb}m",
        }
        restricted = restricted_container(read_only_root=True)
        self.deployment = KubeObject(
            f"{name}", "apps/v1", "Deployment", metadata=meta(name, ns, APP),
            spec={
                "replicas": webui.router_replicas,
                "selector": {"matchLabels": APP},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": APP}, "spec": {
                    "serviceAccountName": s.ksa_name,
                    **s.placement.pod_fields(),
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": APP}}],
                    "securityContext": pod_security(ROUTER_UID, ROUTER_UID, fs_group=False),
                    "containers": [
                        {"name": "router", "image": s.image,
                         "ports": [{"name": "http", "containerPort": ROUTER_PORT}],
                         "env": env_list(env),
                         "readinessProbe": {"httpGet": {"path": "/healthz", "port": ROUTER_PORT},
                                            "periodSeconds": 5},
                         "livenessProbe": {"httpGet": {"path": "/healthz", "port": ROUTER_PORT},
                                           "periodSeconds": 10, "failureThreshold": 6},
                         "resources": {"requests": {"cpu": "250m", "memory": "128Mi"},
                                       "limits": {"memory": "512Mi"}},
                         "volumeMounts": [{"name": "redis-secrets", "mountPath": SECRETS_DIR,
                                           "readOnly": True},
                                          {"name": "tmp", "mountPath": "/tmp"}],
                         "securityContext": restricted},
                        {"name": "verifier", "image": s.image,
                         "command": [IMAGE_PYTHON, "-m", "sdfleet_router.verifier"],
                         "env": [{"name": e.IAP_AUDIENCE, "value": s.iap_audience},
                                 {"name": e.VERIFIER_HOST, "value": LOOPBACK},
                                 {"name": e.VERIFIER_PORT, "value": str(VERIFIER_PORT)}],
                         "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                       "limits": {"memory": "256Mi"}},
                         "securityContext": restricted},
                    ],
                    "volumes": [
                        {"name": "redis-secrets", "csi": {
                            "driver": SECRETS_CSI_DRIVER, "readOnly": True,
                            "volumeAttributes": {"secretProviderClass": f"{name}-redis"}}},
                        {"name": "tmp", "emptyDir": {"medium": "Memory",
                                                     "sizeLimit": f"{TMP_SIZE_MIB}Mi"}}],
                }},
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.secrets,
                                                                 self.service_account]))
        self.disruption_budget = KubeObject(
            f"{name}-pdb", "policy/v1", "PodDisruptionBudget", metadata=meta(name, ns),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": APP}}, opts=child)
        self.service = KubeObject(
            f"{name}-service", "v1", "Service",
            metadata=meta(name, ns, APP, annotations={
                # A standalone NEG with a known name, which the program's own load balancer
                # targets (GKE docs, "Container-native load balancing through standalone
                # zonal NEGs": `exposed_ports` with `name`).
                "cloud.google.com/neg": json.dumps(
                    {"exposed_ports": {"80": {"name": s.neg_name}}}),
                # Not awaited for endpoints: the router's pods wait for the IAP audience, which
                # comes from the backend service built on this Service's NEGs (pulumi-kubernetes
                # `pulumi.com/skipAwait`); the load balancer waits for the NEGs itself.
                "pulumi.com/skipAwait": "true"}),
            spec={"type": "ClusterIP", "selector": APP,
                  "ports": [{"name": "http", "port": 80, "targetPort": ROUTER_PORT,
                             "protocol": "TCP"}]},
            opts=child)
        self.network_policy = KubeObject(
            f"{name}-only-load-balancer", "networking.k8s.io/v1", "NetworkPolicy",
            metadata=meta(f"{name}-only-load-balancer", ns),
            spec=router_ingress_policy(APP, ROUTER_PORT), opts=child)
        self.register_outputs({"service": name})
