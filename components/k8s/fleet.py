"""The WebUI fleet: one Agones GameServer per person, warm buffer, placeholders, isolation.

Each game server's pod (images/webui, DESIGN.md section 3) has two containers:
- `webui`: the supervisor and the chosen WebUI, GPU limit, the shared models read-only,
  its own scratch space, read-only probes;
- `user-sync`: the trusted sidecar that copies the allocated person's folder in and their
  new outputs back; the only container that mounts people's folders.
No host ports (`portPolicy: None`): the router reaches the pod by its pod IP, and a
NetworkPolicy admits only router pods to the WebUI port.

Warm capacity: a FleetAutoscaler keeps `buffer` Ready game servers (a larger buffer in the
configured peak hours), and low-priority placeholder pods keep GPU nodes up; any WebUI pod
preempts them.
"""

from __future__ import annotations

import pulumi

from components.config import FleetConfig, GpuPoolConfig, ModelsConfig, WebuiConfig
from components.gcp.node_pools import GPU_TAINT, POOL_LABEL
from components.k8s.objects import KubeObject, meta

WEBUI_PORT = 7860  # the game server port: the trusted front in `user-sync` listens here
FRAMEWORK_PORT = 7870  # the WebUI itself, on loopback only (images/webui front.py)
SUPERVISOR_PORT = 7861
# The first start may load a model for minutes. One budget for the startup probe and the
# supervisor (it restarts a start that overruns it, and pings Agones Health until then).
STARTUP_PROBE_PERIOD = 10
STARTUP_BUDGET_SECONDS = 1200
APP_LABEL = "sdfleet.dev/app"
GPU_TOLERATION = {"key": GPU_TAINT["key"], "operator": "Equal", "value": GPU_TAINT["value"],
                  "effect": "NoSchedule"}
PLACEHOLDER_PRIORITY = -10
WEBUI_PRIORITY = 1000
# A pause container: requests a GPU and does nothing else, so it holds a node warm.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


# The image's own interpreter (images/webui: ENTRYPOINT is `<venv>/bin/python -m`).
IMAGE_PYTHON = "/opt/sdfleet/venv/bin/python"


def _probe(kind: str, period: int, failures: int, timeout: int = 5) -> dict:
    # Probes only read (images/webui: sdfleet_webui.probe): they never touch WebUI state.
    return {"exec": {"command": [IMAGE_PYTHON, "-m", "sdfleet_webui.probe", kind]},
            "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": timeout}


def _restricted() -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True}


def webui_pod_spec(fleet: FleetConfig, pool: GpuPoolConfig, webui: WebuiConfig,
                   models: ModelsConfig, image: str, claim: str) -> dict:
    """The pod template of every WebUI game server."""
    return {
        "priorityClassName": "sdfleet-webui",
        "nodeSelector": {POOL_LABEL: pool.name},
        "tolerations": [GPU_TOLERATION],
        "terminationGracePeriodSeconds": 60,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                            "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "webui",
                "image": image,
                # No pod port: the framework listens on loopback; the front owns WEBUI_PORT.
                # Names as images/webui/sdfleet_webui/supervisor.py reads them. No
                # SDFLEET_MODELS_ROOT: the image uses its baked models when it has them,
                # else the shared store at /models (images/webui README, "Baked models").
                "env": [
                    {"name": "SDFLEET_FRAMEWORK", "value": webui.framework},
                    {"name": "SDFLEET_SCRATCH", "value": "/scratch"},
                    {"name": "SDFLEET_WEBUI_PORT", "value": str(FRAMEWORK_PORT)},
                    {"name": "SDFLEET_LISTEN_HOST", "value": "127.0.0.1"},
                    {"name": "SDFLEET_START_TIMEOUT_SECONDS", "value": str(STARTUP_BUDGET_SECONDS)},
                ],
                "resources": {
                    "requests": {"cpu": fleet.cpu, "memory": fleet.memory},
                    "limits": {"memory": fleet.memory, "nvidia.com/gpu": str(pool.accelerator_count)},
                },
                "volumeMounts": [
                    {"name": "shared", "mountPath": "/models", "subPath": "models", "readOnly": True},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
                # Model load can take minutes on a cold node; startup allows 20 minutes.
                "startupProbe": _probe("startup", STARTUP_PROBE_PERIOD,
                                       STARTUP_BUDGET_SECONDS // STARTUP_PROBE_PERIOD),
                "readinessProbe": _probe("readiness", 10, 3),
                "livenessProbe": _probe("liveness", 30, 4, timeout=10),
                "securityContext": _restricted(),
            },
            {
                "name": "user-sync",
                "image": image,
                # The trusted sidecar: the front (the only listener on the game server port;
                # refuses anyone but the allocated person with 421) and the user sync.
                "args": ["sdfleet_webui.trusted"],
                "ports": [{"name": "webui", "containerPort": WEBUI_PORT}],
                "env": [{"name": "SDFLEET_SCRATCH", "value": "/scratch"},
                        {"name": "SDFLEET_USERS_ROOT", "value": "/users"},
                        {"name": "SDFLEET_FRONT_PORT", "value": str(WEBUI_PORT)},
                        {"name": "SDFLEET_FRONT_UPSTREAM",
                         "value": f"http://127.0.0.1:{FRAMEWORK_PORT}"}],
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"memory": "512Mi"}},
                "volumeMounts": [
                    {"name": "shared", "mountPath": "/users", "subPath": "users"},
                    {"name": "scratch", "mountPath": "/scratch"},
                ],
                "securityContext": _restricted(),
            },
        ],
        "volumes": [
            {"name": "shared", "persistentVolumeClaim": {"claimName": claim}},
            {"name": "scratch", "emptyDir": {"sizeLimit": fleet.scratch_size}},
        ],
    }


def autoscaler_policy(fleet: FleetConfig) -> dict:
    """Buffer policy; with peak hours, a Chain whose first link is a scheduled larger buffer."""
    def buffer(size: int) -> dict:
        return {"type": "Buffer", "buffer": {"bufferSize": size, "minReplicas": fleet.min_replicas,
                                             "maxReplicas": fleet.max_replicas}}
    if fleet.peak_hours is None:
        return buffer(fleet.buffer)
    peak = fleet.peak_hours
    return {"type": "Chain", "chain": [
        {"id": "peak-hours", "type": "Schedule", "schedule": {
            "activePeriod": {"timezone": peak.timezone, "startCron": peak.start_cron,
                             "duration": peak.duration},
            "policy": buffer(peak.buffer)}},
        {"id": "default", **buffer(fleet.buffer)},
    ]}


class WebuiFleet(pulumi.ComponentResource):
    """`sdfleet:k8s:WebuiFleet`: Fleet, FleetAutoscaler, priorities, placeholders, policy."""

    def __init__(self, name: str, fleet: FleetConfig, pool: GpuPoolConfig, webui: WebuiConfig,
                 models: ModelsConfig, image: str, claim: str, router_namespace: str,
                 agones_release: pulumi.Resource, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:WebuiFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ns = fleet.namespace
        self.fleet_name = f"{name}"
        self.namespace = ns

        self.webui_priority = KubeObject(
            f"{name}-priority", "scheduling.k8s.io/v1", "PriorityClass",
            metadata=meta("sdfleet-webui"), value=WEBUI_PRIORITY, globalDefault=False,
            description="People's WebUI pods: preempt placeholders", opts=child)

        after_agones = pulumi.ResourceOptions(parent=self, depends_on=[agones_release])
        labels = {APP_LABEL: "webui"}
        self.fleet = KubeObject(
            f"{name}", "agones.dev/v1", "Fleet", metadata=meta(self.fleet_name, ns, labels),
            spec={
                "replicas": fleet.buffer,
                "scheduling": "Packed",
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        # Agones: `container` names the container that gets the port
                        # (default: the game server container, `webui`).
                        "ports": [{"name": "webui", "portPolicy": "None", "container": "user-sync",
                                   "containerPort": WEBUI_PORT, "protocol": "TCP"}],
                        "health": {"disabled": False, "initialDelaySeconds": 30,
                                   "periodSeconds": 15, "failureThreshold": 4},
                        "sdkServer": {"logLevel": "Info"},
                        "template": {"metadata": {"labels": labels},
                                     "spec": webui_pod_spec(fleet, pool, webui, models, image,
                                                            claim)},
                    },
                },
            },
            opts=after_agones)
        self.autoscaler = KubeObject(
            f"{name}-autoscaler", "autoscaling.agones.dev/v1", "FleetAutoscaler",
            metadata=meta(f"{name}-autoscaler", ns),
            spec={"fleetName": self.fleet_name, "policy": autoscaler_policy(fleet),
                  "sync": {"type": "FixedInterval", "fixedInterval": {"seconds": 15}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[agones_release, self.fleet]))

        self.placeholder_priority = KubeObject(
            f"{name}-placeholder-priority", "scheduling.k8s.io/v1", "PriorityClass",
            metadata=meta("sdfleet-placeholder"), value=PLACEHOLDER_PRIORITY,
            globalDefault=False, preemptionPolicy="Never",
            description="Placeholder pods that keep GPU nodes warm; preempted by anyone",
            opts=child)
        self.placeholders = KubeObject(
            f"{name}-placeholders", "apps/v1", "Deployment",
            metadata=meta(f"{name}-placeholders", ns, {APP_LABEL: "placeholder"}),
            spec={"replicas": fleet.placeholders,
                  "selector": {"matchLabels": {APP_LABEL: "placeholder"}},
                  "template": {"metadata": {"labels": {APP_LABEL: "placeholder"}}, "spec": {
                      "priorityClassName": "sdfleet-placeholder",
                      "terminationGracePeriodSeconds": 0,
                      "nodeSelector": {POOL_LABEL: pool.name},
                      "tolerations": [GPU_TOLERATION],
                      "automountServiceAccountToken": False,
                      "containers": [{"name": "pause", "image": PAUSE_IMAGE,
                                      "resources": {"limits": {"nvidia.com/gpu": "1"},
                                                    "requests": {"cpu": "10m", "memory": "16Mi"}},
                                      "securityContext": _restricted()}]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.placeholder_priority]))

        # Only router pods may open the WebUI port; nothing else reaches people's pods.
        self.network_policy = KubeObject(
            f"{name}-only-router", "networking.k8s.io/v1", "NetworkPolicy",
            metadata=meta(f"{name}-only-router", ns),
            spec={"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                             "kubernetes.io/metadata.name": router_namespace}},
                                         "podSelector": {"matchLabels": {APP_LABEL: "router"}}}],
                               "ports": [{"protocol": "TCP", "port": WEBUI_PORT}]}]},
            opts=child)
        self.register_outputs({"fleet": self.fleet_name, "namespace": ns})


class FleetAccess(pulumi.ComponentResource):
    """`sdfleet:k8s:FleetAccess`: what the allocator and culler may do in the fleet namespace."""

    ALLOCATOR_RULES = [
        {"apiGroups": ["allocation.agones.dev"], "resources": ["gameserverallocations"],
         "verbs": ["create"]},
        # delete: a game server that lost an allocation race is handed back at once.
        {"apiGroups": ["agones.dev"], "resources": ["gameservers"],
         "verbs": ["get", "list", "delete"]},
        {"apiGroups": ["agones.dev"], "resources": ["fleets"], "verbs": ["get"]},
    ]
    CULLER_RULES = [
        # deletecollection: one request ends a batch of sessions (selected by identity label).
        {"apiGroups": ["agones.dev"], "resources": ["gameservers"],
         "verbs": ["get", "list", "delete", "deletecollection"]},
    ]

    def __init__(self, name: str, namespace: str, allocator_user: pulumi.Input[str],
                 culler_user: pulumi.Input[str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:FleetAccess", name, None, opts)
        for who, user, rules in (("allocator", allocator_user, self.ALLOCATOR_RULES),
                                 ("culler", culler_user, self.CULLER_RULES)):
            role = KubeObject(f"{name}-{who}", "rbac.authorization.k8s.io/v1", "Role",
                              metadata=meta(f"sdfleet-{who}", namespace), rules=rules,
                              opts=pulumi.ResourceOptions(parent=self))
            KubeObject(f"{name}-{who}-binding", "rbac.authorization.k8s.io/v1", "RoleBinding",
                       metadata=meta(f"sdfleet-{who}", namespace),
                       roleRef={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                "name": f"sdfleet-{who}"},
                       # GKE maps a Google service account to the user named by its email.
                       subjects=[{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                  "name": user}],
                       opts=pulumi.ResourceOptions(parent=self, depends_on=[role]))
        self.register_outputs({})
