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
from components.gcp.node_pools import POOL_LABEL, SYSTEM_POOL_NAME
from components.k8s.objects import KubeObject, meta

ROUTER_PORT = 8080
VERIFIER_PORT = 8081
SECRETS_DIR = "/var/run/sdfleet/redis"
APP = {"sdfleet.dev/app": "router"}
# The router's /tmp (rendered nginx.conf, pid, temporary files): in memory, small. Uploads
# are streamed to the pod, never buffered here (images/router README, "Uploads").
TMP_SIZE_MIB = 64


@dataclass(frozen=True)
class RouterSettings:
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
    backend_config: str


class Router(pulumi.ComponentResource):
    """`sdfleet:k8s:Router`."""

    def __init__(self, name: str, webui: WebuiConfig, s: RouterSettings,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:Router", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = s.namespace
        self.service_name = name

        self.service_account = KubeObject(
            f"{name}-ksa", "v1", "ServiceAccount",
            metadata=meta(s.ksa_name, ns, annotations=s.gsa_annotation), opts=child)
        self.secrets = KubeObject(
            f"{name}-redis-secrets", "secrets-store-gke.csi.k8s.io/v1", "SecretProviderClass",
            metadata=meta(f"{name}-redis", ns),
            spec={"provider": "gke", "parameters": {"secrets": pulumi.Output.all(
                s.redis_auth_secret, s.redis_ca_secret).apply(lambda names: json.dumps([
                    {"resourceName": f"{names[0]}/versions/latest", "path": "auth"},
                    {"resourceName": f"{names[1]}/versions/latest", "path": "ca.pem"}]))}},
            opts=child)

        env = {
            "ROUTER_LISTEN": str(ROUTER_PORT),
            "REDIS_HOST": s.redis_host,
            "REDIS_PORT": pulumi.Output.from_input(s.redis_port).apply(str),
            "REDIS_TLS": "true",
            "REDIS_CA_FILE": f"{SECRETS_DIR}/ca.pem",
            "REDIS_PASSWORD_FILE": f"{SECRETS_DIR}/auth",
            "REDIS_PREFIX": "sdfleet:",
            # The function's route, and its base URL as the OIDC audience (Cloud Run checks it).
            "ALLOCATOR_URL": pulumi.Output.from_input(s.allocator_url).apply(lambda u: f"{u}/allocate"),
            "ALLOCATOR_AUDIENCE": s.allocator_url,
            "VERIFIER_ADDR": f"127.0.0.1:{VERIFIER_PORT}",
            "PROXY_READ_TIMEOUT": f"{webui.request_timeout_seconds}s",
            "PROXY_SEND_TIMEOUT": f"{webui.request_timeout_seconds}s",
            "CLIENT_MAX_BODY_SIZE": f"{webui.max_upload_mb}m",
        }
        restricted = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                      "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True}
        self.deployment = KubeObject(
            f"{name}", "apps/v1", "Deployment", metadata=meta(name, ns, APP),
            spec={
                "replicas": webui.router_replicas,
                "selector": {"matchLabels": APP},
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"metadata": {"labels": APP}, "spec": {
                    "serviceAccountName": s.ksa_name,
                    "nodeSelector": {POOL_LABEL: SYSTEM_POOL_NAME},
                    "topologySpreadConstraints": [{
                        "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": APP}}],
                    # `nobody` in the OpenResty image (images/router README).
                    "securityContext": {"runAsUser": 65534, "runAsGroup": 65534, "runAsNonRoot": True,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [
                        {"name": "router", "image": s.image,
                         "ports": [{"name": "http", "containerPort": ROUTER_PORT}],
                         "env": [{"name": k, "value": v} for k, v in env.items()],
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
                         "command": ["python3", "-m", "sdfleet_router.verifier"],
                         "env": [{"name": "IAP_AUDIENCE", "value": s.iap_audience},
                                 {"name": "VERIFIER_HOST", "value": "127.0.0.1"},
                                 {"name": "VERIFIER_PORT", "value": str(VERIFIER_PORT)}],
                         "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                       "limits": {"memory": "256Mi"}},
                         "securityContext": restricted},
                    ],
                    "volumes": [
                        {"name": "redis-secrets", "csi": {
                            "driver": "secrets-store-gke.csi.k8s.io", "readOnly": True,
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
                "cloud.google.com/neg": json.dumps({"ingress": True}),
                "cloud.google.com/backend-config": json.dumps({"default": s.backend_config})}),
            spec={"type": "ClusterIP", "selector": APP,
                  "ports": [{"name": "http", "port": 80, "targetPort": ROUTER_PORT,
                             "protocol": "TCP"}]},
            opts=child)
        self.register_outputs({"service": name})
