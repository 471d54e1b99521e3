"""Pod conventions every workload of the platform shares, on both clouds: labels, where pods
may run (node selectors, taints and tolerations), ports, the images' interpreter and the pod
and container security contexts. The fleet, the batch workers, the router, the model sync and
the shared volume take these from here, and the cloud layers label and taint their nodes with
the same values, so a pod and the node meant for it cannot drift apart.

Where the clouds genuinely differ (the GPU taint GKE puts on GPU nodes, the one our Karpenter
NodePool sets, Karpenter's do-not-disrupt annotation), the cloud layer owns the value as a
`Taint` or a `NodePlacement` and passes it in; this module only says what a value looks like.
Nothing here imports a cloud layer (tests/program/test_layering.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# --- Labels ------------------------------------------------------------------------------------
# Our own node label: both clouds put it on every node (GKE node pools, the EKS managed system
# node group, the Karpenter NodePool template), so a pod picks a pool the same way on either.
POOL_LABEL = "sdfleet.dev/pool"
# On a pool with a fallback: "spot" or "on-demand" (the cost estimate tells them apart).
CAPACITY_LABEL = "sdfleet.dev/capacity"
SYSTEM_POOL = "system"
# What a pod is (router, webui, placeholder, model-sync, share-prepare).
APP_LABEL = "sdfleet.dev/app"
# Which batch runtime a worker serves.
RUNTIME_LABEL = "sdfleet.dev/runtime"
# The extended resource of the NVIDIA device plugin (GKE installs it with the driver;
# Bottlerocket's NVIDIA variant ships it), requested by every GPU pod.
GPU_RESOURCE = "nvidia.com/gpu"


def pool_selector(pool: str) -> dict[str, str]:
    """The node selector of the pool named `pool`."""
    return {POOL_LABEL: pool}


SYSTEM_SELECTOR = pool_selector(SYSTEM_POOL)

# --- Taints and tolerations --------------------------------------------------------------------
# Kubernetes taint effects (core/v1 Taint.effect) and the names the GKE API gives them
# (pulumi-gcp `container.NodePoolNodeConfigTaintArgs.effect`: "NO_SCHEDULE",
# "PREFER_NO_SCHEDULE" or "NO_EXECUTE"; GKE docs, "Configure workload separation in GKE").
GKE_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "PreferNoSchedule": "PREFER_NO_SCHEDULE",
                     "NoExecute": "NO_EXECUTE"}


@dataclass(frozen=True)
class Taint:
    """A node taint, in Kubernetes terms; the one value a node pool and its pods share."""

    key: str
    value: str
    effect: str = "NoSchedule"

    def __post_init__(self) -> None:
        if self.effect not in GKE_TAINT_EFFECTS:
            raise ValueError(f"taint effect {self.effect!r}: one of {', '.join(GKE_TAINT_EFFECTS)}")

    def manifest(self) -> dict[str, str]:
        """As a Kubernetes Taint (a Karpenter NodePool's `spec.template.spec.taints`)."""
        return {"key": self.key, "value": self.value, "effect": self.effect}

    def gke(self) -> dict[str, str]:
        """As the GKE API spells it (`NodePoolNodeConfigTaintArgs(**taint.gke())`)."""
        return {"key": self.key, "value": self.value, "effect": GKE_TAINT_EFFECTS[self.effect]}

    def toleration(self) -> dict[str, str]:
        """The toleration that admits a pod to nodes with exactly this taint."""
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


@dataclass(frozen=True)
class NodePlacement:
    """Where a pod may run, as the cloud layer decides it: the node selector, the tolerations
    of those nodes' taints, and pod annotations the node manager reads."""

    node_selector: dict[str, str]
    tolerations: tuple[dict[str, str], ...] = ()
    annotations: dict[str, str] = field(default_factory=dict)

    @classmethod
    def on(cls, pool: str, *taints: Taint, annotations: dict[str, str] | None = None
           ) -> "NodePlacement":
        return cls(pool_selector(pool), tuple(t.toleration() for t in taints),
                   dict(annotations or {}))

    def pod_fields(self) -> dict[str, Any]:
        """The pod spec fields this placement sets (`nodeSelector`, `tolerations`)."""
        out: dict[str, Any] = {"nodeSelector": dict(self.node_selector)}
        if self.tolerations:
            out["tolerations"] = [dict(t) for t in self.tolerations]
        return out


SYSTEM_PLACEMENT = NodePlacement(SYSTEM_SELECTOR)

# --- Ports -------------------------------------------------------------------------------------
LOOPBACK = "127.0.0.1"
# A WebUI's port: in a game server pod the trusted front listens here (the game server port);
# in a batch pod the WebUI API itself, on loopback.
WEBUI_PORT = 7860
# The framework behind the front in a game server pod, on loopback only (images/webui front.py).
FRAMEWORK_PORT = 7870
SUPERVISOR_PORT = 7861
# The router (nginx) and its loopback verifier of IAP assertions (images/router).
ROUTER_PORT = 8080
VERIFIER_PORT = 8081

# --- Images and security contexts ---------------------------------------------------------------
# The images' own interpreter: their programs live in a venv that is not the system Python
# (images/webui/Dockerfile and images/router/Dockerfile: `python3 -m venv /opt/sdfleet/venv`;
# the WebUI image's ENTRYPOINT is `<venv>/bin/python -m`). Called by absolute path.
IMAGE_PYTHON = "/opt/sdfleet/venv/bin/python"
# The user the WebUI image runs as (images/webui/Dockerfile: `USER 1000:1000`); the shared
# store's folders are handed to it (components/k8s/shared_volume.py).
WEBUI_UID = 1000
WEBUI_GID = 1000
# `nobody` in the OpenResty image the router builds on (images/router README).
ROUTER_UID = 65534


def pod_security(uid: int, gid: int, *, fs_group: bool = True) -> dict[str, Any]:
    """A pod securityContext at the Pod Security `restricted` level: a fixed non-root user
    and the runtime's default seccomp profile (Kubernetes docs, "Pod Security Standards")."""
    out: dict[str, Any] = {"runAsUser": uid, "runAsGroup": gid}
    if fs_group:
        out["fsGroup"] = gid
    return {**out, "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


# A pod whose user the image chooses (a batch runtime's WebUI) still gets the default profile.
DEFAULT_SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}


def restricted_container(*, non_root: bool = True, read_only_root: bool = False,
                         seccomp: bool = False, add: tuple[str, ...] = ()) -> dict[str, Any]:
    """A container securityContext: no privilege escalation, every capability dropped (`add`
    names the few a trusted step needs back), non-root unless told."""
    caps: dict[str, list[str]] = {"drop": ["ALL"]}
    if add:
        caps["add"] = list(add)
    out: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": caps}
    if non_root:
        out["runAsNonRoot"] = True
    if seccomp:
        out.update(DEFAULT_SECCOMP)
    if read_only_root:
        out["readOnlyRootFilesystem"] = True
    return out


def env_list(values: dict[str, Any]) -> list[dict[str, Any]]:
    """A container's `env` from a name -> value mapping (values may be Outputs)."""
    return [{"name": name, "value": value} for name, value in values.items()]
