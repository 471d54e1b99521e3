"""The WebUI fleet: one Agones GameServer per person, warm buffer, placeholders, isolation.

Each game server's pod (images/webui, docs/architecture.md section 3) has two containers:
- `webui`: the supervisor and the chosen WebUI, GPU limit, the shared models read-only,
  its own scratch space, read-only probes;
- `user-sync`: the trusted sidecar that copies the allocated person's folder in and their
  new outputs back; the only container that mounts people's folders.
No host ports (`portPolicy: None`): the router reaches the pod by its pod IP, and a
NetworkPolicy admits only router pods to the WebUI port; another lets the pod open cluster
DNS and the API server (for the Agones SDK sidecar) and nothing else (no NFS, Redis,
metadata server, other pods or internet).

Warm capacity: a FleetAutoscaler keeps `buffer` Ready game servers (a larger buffer in the
configured peak hours), and low-priority placeholder pods keep GPU nodes up; any WebUI pod
preempts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.config import CullingConfig, FleetConfig, GpuPoolConfig, WebuiConfig
from components.config.profiles import Profile
from components.k8s.autoscaling import autoscaler_policy
from components.k8s.image_env import WEBUI as WEBUI_ENV
from components.k8s.objects import KubeObject, meta
from components.k8s.pods import (
    APP_LABEL,
    FRAMEWORK_PORT,
    GPU_RESOURCE,
    IMAGE_PYTHON,
    LOOPBACK,
    POOL_LABEL,
    SUPERVISOR_PORT,
    WEBUI_GID,
    WEBUI_PORT,
    WEBUI_UID,
    NodePlacement,
    env_list,
    pod_security,
    pool_selector,
    restricted_container,
)

# WEBUI_PORT (pods.py) is the game server port: the trusted front in `user-sync` listens
# there; FRAMEWORK_PORT is the WebUI itself, on loopback only.
__all__ = ["APP_LABEL", "FRAMEWORK_PORT", "IMAGE_PYTHON", "SUPERVISOR_PORT", "WEBUI_PORT",
           "ProfileFleet", "WebuiFleet", "WebuiFleetArgs",
           "webui_pod_spec"]
# The first start may load a model for minutes. One budget for the startup probe and the
# supervisor (it restarts a start that overruns it, and pings Agones Health until then).
# Probes every 3 s: a pod is seen ready within 3 s of its WebUI, not 10 (the probe is a
# short exec that only reads the supervisor's state).
STARTUP_PROBE_PERIOD = 3
READINESS_PROBE_PERIOD = 3
STARTUP_BUDGET_SECONDS = 1200
PLACEHOLDER_PRIORITY = -10
WEBUI_PRIORITY = 1000
# A pause container: requests a GPU and does nothing else, so it holds a node warm.
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"

# Container names, and which one Agones treats as the game server. Agones v1.50.0
# pkg/apis/agones/v1/gameserver.go, `(*GameServerSpec).Validate`: with more than one
# container in the pod template, `spec.container` is required (ErrContainerRequired), and
# it must name one of them. Agones watches that container's restarts (Unhealthy) and by
# default opens the game server ports on it.
WEBUI_CONTAINER = "webui"
SYNC_CONTAINER = "user-sync"
GAME_SERVER_CONTAINER = WEBUI_CONTAINER

# Where the pod mounts things (the env names that carry them come from the image).
MODELS_MOUNT = "/models"
USERS_MOUNT = "/users"
SCRATCH_MOUNT = "/scratch"


def gpu_limit(pool: GpuPoolConfig) -> str:
    """GPUs one pod takes on `pool`: the node's accelerator count (placeholders too, so one
    placeholder holds one whole node of the size a WebUI pod needs)."""
    return str(pool.accelerator_count)


def _probe(kind: str, period: int, failures: int, timeout: int = 5) -> dict:
    # Probes only read (images/webui: sdfleet_webui.probe): they never touch WebUI state.
    return {"exec": {"command": [IMAGE_PYTHON, "-m", "sdfleet_webui.probe", kind]},
            "periodSeconds": period, "failureThreshold": failures, "timeoutSeconds": timeout}


def webui_pod_spec(fleet: FleetConfig, pool: GpuPoolConfig, webui: WebuiConfig,
                   image: str, claim: pulumi.Input[str],
                   placement: Optional[NodePlacement] = None,
                   models: Optional[tuple[str, ...]] = None,
                   culling: Optional[CullingConfig] = None) -> dict:
    """The pod template of every WebUI game server; `placement` (from the cloud layer: the GPU
    pool's selector and the toleration of its taint) defaults to the pool's selector alone;
    `models` limits what the WebUI offers to those names (None: every model)."""
    placement = placement or NodePlacement(pool_selector(pool.name))
    only_models = {WEBUI_ENV.MODELS_ONLY: ",".join(models)} if models is not None else {}
    # The front tells the page when the session ends, by the culler's own limits.
    culling = culling or CullingConfig()
    session_end = {WEBUI_ENV.IDLE_SECONDS: str(culling.idle_minutes * 60),
                   WEBUI_ENV.MAX_SESSION_SECONDS: str(culling.max_session_hours * 3600),
                   WEBUI_ENV.WARN_SECONDS: str(culling.warn_minutes * 60)}
    return {
        "priorityClassName": "sdfleet-webui",
        **placement.pod_fields(),
        "terminationGracePeriodSeconds": 60,
        "securityContext": pod_security(WEBUI_UID, WEBUI_GID),
        "containers": [
            {
                "name": WEBUI_CONTAINER,
                "image": image,
                # No pod port: the framework listens on loopback; the front owns WEBUI_PORT.
                # Names from the image (images/webui/sdfleet_webui/env.py). No models root:
                # the image uses its baked models when it has them, else the shared store at
                # /models (images/webui README, "Baked models"). The default checkpoint is the
                # model store's manifest's (written by the model sync Job).
                "env": env_list({
                    WEBUI_ENV.FRAMEWORK: webui.framework,
                    WEBUI_ENV.SCRATCH: SCRATCH_MOUNT,
                    WEBUI_ENV.WEBUI_PORT: str(FRAMEWORK_PORT),
                    WEBUI_ENV.LISTEN_HOST: LOOPBACK,
                    WEBUI_ENV.START_TIMEOUT_SECONDS: str(STARTUP_BUDGET_SECONDS),
                    **only_models,
                }),
                "resources": {
                    "requests": {"cpu": fleet.cpu, "memory": fleet.memory},
                    "limits": {"memory": fleet.memory, GPU_RESOURCE: gpu_limit(pool)},
                },
                "volumeMounts": [
                    {"name": "shared", "mountPath": MODELS_MOUNT, "subPath": "models",
                     "readOnly": True},
                    {"name": "scratch", "mountPath": SCRATCH_MOUNT},
                ],
                # Model load can take minutes on a cold node; startup allows 20 minutes.
                "startupProbe": _probe("startup", STARTUP_PROBE_PERIOD,
                                       STARTUP_BUDGET_SECONDS // STARTUP_PROBE_PERIOD),
                "readinessProbe": _probe("readiness", READINESS_PROBE_PERIOD, 3),
                "livenessProbe": _probe("liveness", 30, 4, timeout=10),
                "securityContext": restricted_container(),
            },
            {
                "name": SYNC_CONTAINER,
                "image": image,
                # The trusted sidecar: the front (the only listener on the game server port;
                # refuses anyone but the allocated person with 421) and the user sync.
                "args": ["sdfleet_webui.trusted"],
                "ports": [{"name": "webui", "containerPort": WEBUI_PORT}],
                "env": env_list({WEBUI_ENV.SCRATCH: SCRATCH_MOUNT, WEBUI_ENV.USERS_ROOT: USERS_MOUNT,
                             WEBUI_ENV.FRONT_PORT: str(WEBUI_PORT),
                             WEBUI_ENV.FRONT_UPSTREAM: f"http://{LOOPBACK}:{FRAMEWORK_PORT}",
                             **session_end}),
                "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                              "limits": {"memory": "512Mi"}},
                "volumeMounts": [
                    {"name": "shared", "mountPath": USERS_MOUNT, "subPath": "users"},
                    {"name": "scratch", "mountPath": SCRATCH_MOUNT},
                ],
                "securityContext": restricted_container(),
            },
        ],
        "volumes": [
            {"name": "shared", "persistentVolumeClaim": {"claimName": claim}},
            {"name": "scratch", "emptyDir": {"sizeLimit": fleet.scratch_size}},
        ],
    }


# Cluster DNS: kube-dns in kube-system (GKE's default DNS provider; its pods carry
# `k8s-app: kube-dns`). `kubernetes.io/metadata.name` is set on every namespace by the API
# server (Kubernetes >= 1.22, NamespaceDefaultLabelName). With Cloud DNS for GKE instead
# (components/gcp/cluster.py sets no dns_config: kube-dns), this peer must change.
CLUSTER_DNS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}


# The Kubernetes API server, as its clients in a pod open it: HTTPS on 443. GKE's control
# plane answers `kubernetes.default` on 443 of its private endpoint, an address inside the
# cluster's control-plane range (master_ipv4_cidr_block); Dataplane V2 checks egress policy
# against that translated address, not the Service's cluster IP.
API_SERVER_PORT = 443


def webui_egress_policy(pod_labels: dict, api_server_cidr: str) -> dict:
    """What a WebUI pod may open: cluster DNS and the Kubernetes API server, nothing else.

    The API server is for the Agones SDK sidecar Agones adds to every game server pod: it is a
    Kubernetes client (agones v1.50 cmd/sdk-server/main.go builds an in-cluster client;
    pkg/sdkserver/sdkserver.go waits for a GameServer informer's cache and writes Ready,
    labels and annotations as patches), so without this rule no game server becomes Ready.
    Agones mounts an empty folder over the service account token in the game server
    container (GameServer DisableServiceAccount), so only the sidecar holds credentials; the
    agones-sdk role it runs as may only read and update game servers.
    Not the pod ranges (Agones's allocation endpoint answers without RBAC, agones#4572), not
    the NFS server (a user-space NFS client in the pod would reach everyone's folders: the
    share is mounted by the kubelet from the node, outside this policy), not Redis, not the
    metadata server (169.254.169.254; its Workload Identity token), no other pod, no internet
    (models come from the model sync Job, never the pod). The supervisor and the SDK's REST
    port are reached over loopback, which no NetworkPolicy filters. Enforced by GKE Dataplane
    V2 (components/gcp/cluster.py: datapath_provider ADVANCED_DATAPATH).
    """
    return {"podSelector": {"matchLabels": pod_labels}, "policyTypes": ["Egress"],
            "egress": [{"to": [CLUSTER_DNS_PEER],
                        "ports": [{"protocol": "UDP", "port": 53},
                                  {"protocol": "TCP", "port": 53}]},
                       {"to": [{"ipBlock": {"cidr": api_server_cidr}}],
                        "ports": [{"protocol": "TCP", "port": API_SERVER_PORT}]}]}


# Carried by every game server pod of a configured profile (the implicit profile's pods
# keep the labels they had before profiles existed).
PROFILE_LABEL = "sdfleet.dev/profile"


@dataclass(frozen=True)
class ProfileFleet:
    """One profile as the fleet needs it: its pool, its image and where its pods run."""

    profile: Profile
    pool: GpuPoolConfig
    image: pulumi.Input[str]
    # The GPU pool's nodes, as the cloud layer labels and taints them.
    placement: NodePlacement


@dataclass(frozen=True)
class WebuiFleetArgs:
    fleet: FleetConfig
    webui: WebuiConfig
    culling: CullingConfig
    profiles: list[ProfileFleet]
    # The shared volume's claim, as an output of its prepare Job (folders exist).
    claim: pulumi.Input[str]
    router_namespace: str
    agones_release: pulumi.Resource
    # Where pods reach the Kubernetes API server (GKE: the control-plane range).
    api_server_cidr: str


class WebuiFleet(pulumi.ComponentResource):
    """`sdfleet:k8s:WebuiFleet`: a Fleet and FleetAutoscaler per profile, placeholders per
    GPU pool, and the priorities and network policies all WebUI pods share."""

    def __init__(self, name: str, args: WebuiFleetArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:WebuiFleet", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        fleet = args.fleet
        ns = fleet.namespace
        self.namespace = ns

        self.webui_priority = KubeObject(
            f"{name}-priority", "scheduling.k8s.io/v1", "PriorityClass",
            metadata=meta("sdfleet-webui"), value=WEBUI_PRIORITY, globalDefault=False,
            description="People's WebUI pods: preempt placeholders", opts=child)

        labels = {APP_LABEL: "webui"}
        # Fleet name per profile: the implicit profile's is the component's own name.
        self.fleet_names: dict[str, str] = {}
        self.fleets: dict[str, KubeObject] = {}
        self.autoscalers: dict[str, KubeObject] = {}
        for entry in args.profiles:
            profile = entry.profile
            fleet_name = name if profile.implicit else f"{name}-{profile.name}"
            self.fleet_names[profile.name] = fleet_name
            self.fleets[profile.name], self.autoscalers[profile.name] = self._profile_fleet(
                fleet_name, entry, args, labels if profile.implicit
                else {**labels, PROFILE_LABEL: profile.name})
        # The implicit profile's (or first profile's) fleet, for callers that want one.
        first = args.profiles[0].profile.name
        self.fleet_name, self.fleet = self.fleet_names[first], self.fleets[first]
        self.autoscaler = self.autoscalers[first]

        self.placeholder_priority = KubeObject(
            f"{name}-placeholder-priority", "scheduling.k8s.io/v1", "PriorityClass",
            metadata=meta("sdfleet-placeholder"), value=PLACEHOLDER_PRIORITY,
            globalDefault=False, preemptionPolicy="Never",
            description="Placeholder pods that keep GPU nodes warm; preempted by anyone",
            opts=child)
        # One Deployment per GPU pool that runs a profile, sized from the profiles on it.
        by_pool: dict[str, list[ProfileFleet]] = {}
        for entry in args.profiles:
            by_pool.setdefault(entry.pool.name, []).append(entry)
        self.placeholders = {}
        for pool_name, entries in by_pool.items():
            implicit = entries[0].profile.implicit
            resource = f"{name}-placeholders" if implicit else f"{name}-{pool_name}-placeholders"
            selector = ({APP_LABEL: "placeholder"} if implicit
                        else {APP_LABEL: "placeholder", POOL_LABEL: pool_name})
            self.placeholders[pool_name] = KubeObject(
                resource, "apps/v1", "Deployment",
                metadata=meta(resource, ns, {APP_LABEL: "placeholder"}),
                spec={"replicas": sum(e.profile.placeholders for e in entries),
                      "selector": {"matchLabels": selector},
                      "template": {"metadata": {"labels": selector}, "spec": {
                          "priorityClassName": "sdfleet-placeholder",
                          "terminationGracePeriodSeconds": 0,
                          **entries[0].placement.pod_fields(),
                          "automountServiceAccountToken": False,
                          "containers": [{"name": "pause", "image": PAUSE_IMAGE,
                                          "resources": {"limits": {GPU_RESOURCE: gpu_limit(entries[0].pool)},
                                                        "requests": {"cpu": "10m", "memory": "16Mi"}},
                                          "securityContext": restricted_container()}]}}},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.placeholder_priority]))

        # Only router pods may open the WebUI port; nothing else reaches people's pods.
        self.network_policy = KubeObject(
            f"{name}-only-router", "networking.k8s.io/v1", "NetworkPolicy",
            metadata=meta(f"{name}-only-router", ns),
            spec={"podSelector": {"matchLabels": labels}, "policyTypes": ["Ingress"],
                  "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                                             "kubernetes.io/metadata.name": args.router_namespace}},
                                         "podSelector": {"matchLabels": {APP_LABEL: "router"}}}],
                               "ports": [{"protocol": "TCP", "port": WEBUI_PORT}]}]},
            opts=child)
        self.egress_policy = KubeObject(
            f"{name}-egress", "networking.k8s.io/v1", "NetworkPolicy",
            metadata=meta(f"{name}-egress", ns), spec=webui_egress_policy(labels, args.api_server_cidr), opts=child)
        self.register_outputs({"fleets": self.fleet_names, "namespace": ns})

    def _profile_fleet(self, fleet_name: str, entry: ProfileFleet, args: WebuiFleetArgs,
                       labels: dict) -> tuple[KubeObject, KubeObject]:
        """The Fleet and FleetAutoscaler of one profile."""
        ns, profile = args.fleet.namespace, entry.profile
        after_agones = pulumi.ResourceOptions(parent=self, depends_on=[args.agones_release])
        webui = args.webui.model_copy(update={"framework": profile.framework})
        fleet = KubeObject(
            fleet_name, "agones.dev/v1", "Fleet", metadata=meta(fleet_name, ns, labels),
            # No `replicas`: the FleetAutoscaler owns it. Agones v1.50.0's Fleet CRD
            # (install/helm/agones/templates/crds/fleet.yaml) gives it no default, so a new
            # Fleet starts at 0 and the autoscaler raises it to the buffer on its first sync;
            # a value here would be re-applied on every update (server-side apply, or the
            # last-applied three-way merge) and fight the autoscaler. ignore_changes keeps a
            # stack that once set it from resetting it (pulumi-kubernetes#2215: the
            # recommended answer to a field another manager owns).
            spec={
                "scheduling": "Packed",
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "container": GAME_SERVER_CONTAINER,
                        # Agones: a port's `container` names the container that gets it
                        # (default: the game server container); the front is in `user-sync`.
                        "ports": [{"name": "webui", "portPolicy": "None", "container": SYNC_CONTAINER,
                                   "containerPort": WEBUI_PORT, "protocol": "TCP"}],
                        # Agones's SDK health check runs only through the /gshealthz liveness
                        # probe it adds to a game server container that has none
                        # (agones v1.50 pkg/gameservers/controller.go addGameServerHealthCheck;
                        # pkg/sdkserver/sdkserver.go starts its health loop from that
                        # handler). `webui` has its own liveness probe (it restarts a stalled
                        # supervisor), so SDK health would never run: say so. A game server
                        # container that restarts after Ready still makes the GameServer
                        # Unhealthy (pkg/gameservers/health.go failedContainer, which does not
                        # look at `health`).
                        "health": {"disabled": True},
                        "sdkServer": {"logLevel": "Info"},
                        "template": {"metadata": {"labels": labels},
                                     "spec": webui_pod_spec(args.fleet, entry.pool, webui,
                                                             entry.image, args.claim,
                                                             entry.placement, profile.models,
                                                             args.culling)},
                    },
                },
            },
            opts=pulumi.ResourceOptions.merge(after_agones, pulumi.ResourceOptions(
                ignore_changes=["spec.replicas"])))
        autoscaler = KubeObject(
            f"{fleet_name}-autoscaler", "autoscaling.agones.dev/v1", "FleetAutoscaler",
            metadata=meta(f"{fleet_name}-autoscaler", ns),
            spec={"fleetName": fleet_name, "policy": autoscaler_policy(profile),
                  "sync": {"type": "FixedInterval", "fixedInterval": {"seconds": 15}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.agones_release, fleet]))
        return fleet, autoscaler
