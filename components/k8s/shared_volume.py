"""The Filestore share as a ReadWriteMany volume in one namespace, with its top folders made.

A new Filestore share's root is owned by root with mode 755, so no unprivileged pod can
create the `models/` and `users/` folders the pods mount by subPath. The `prepare` Job,
the one trusted step that runs as root, creates them once, owned by the uid every pod that
touches the share runs as (images/webui Dockerfile: `USER 1000:1000`), before anything
mounts them: the model sync Job and the fleet take `ready_claim`. Root works here because
the share is exported without root squash to the node range only (components/gcp/storage.py):
every mount comes from a node's kubelet, pods' own addresses are refused, and every other
pod that mounts the share runs as uid 1000 with no privilege escalation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.k8s.objects import KubeObject, meta
from components.k8s.pods import (
    APP_LABEL,
    DEFAULT_SECCOMP,
    IMAGE_PYTHON,
    WEBUI_GID,
    WEBUI_UID,
    NodePlacement,
    restricted_container,
)

# The folders belong to the user the WebUI image runs as.
OWNER_UID = WEBUI_UID
OWNER_GID = WEBUI_GID
SHARE_MOUNT = "/share"
# folder -> mode: models are read by every pod; people's folders only by their owner uid.
TOP_FOLDERS = {"models": 0o755, "users": 0o700}


@dataclass(frozen=True)
class SharedVolumeArgs:
    namespace: pulumi.Input[str]
    # The NFS export: the Filestore instance's address and share name, and its size.
    server: pulumi.Input[str]
    share: str
    capacity_gb: int
    # Runs the prepare Job (the WebUI image: it has the interpreter and the owner uid).
    image: pulumi.Input[str]
    placement: NodePlacement
    # TCP connections per node to the share (NFS nconnect; 1 is the kernel's default).
    connections: int = 1


def mount_options(connections: int) -> list[str]:
    """NFS options of every mount of the share: `hard` (a slow server delays reads, never fails
    them into a half-written output), NFSv3 (what Filestore serves), and with more than one
    connection `nconnect`, so large model reads spread over several TCP streams."""
    return ["hard", "nfsvers=3", *([f"nconnect={connections}"] if connections > 1 else [])]


def prepare_script(folders: dict[str, int], uid: int, gid: int) -> str:
    """Idempotent: create each folder, set its mode, then hand it to uid:gid."""
    return "\n".join([
        "import os",
        f"for name, mode in {folders!r}.items():",
        "    os.makedirs(name, exist_ok=True)",
        "    os.chmod(name, mode)",
        f"    os.chown(name, {uid}, {gid})",
        "    info = os.stat(name)",
        "    print(name, oct(info.st_mode & 0o777), info.st_uid, info.st_gid, flush=True)",
    ])


class SharedVolume(pulumi.ComponentResource):
    """`sdfleet:k8s:SharedVolume`: PersistentVolume (NFS), its claim, the folder-making Job."""

    def __init__(self, name: str, args: SharedVolumeArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:SharedVolume", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace, image = args.namespace, args.image
        storage = f"{args.capacity_gb}Gi"
        self.volume = KubeObject(
            f"{name}-pv", "v1", "PersistentVolume", metadata=meta(f"{name}"),
            spec={"capacity": {"storage": storage}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "mountOptions": mount_options(args.connections),
                  "nfs": {"server": args.server, "path": f"/{args.share}"}},
            opts=child)
        self.claim_name = name
        self.claim = KubeObject(
            f"{name}-pvc", "v1", "PersistentVolumeClaim", metadata=meta(name, namespace),
            spec={"accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "volumeName": name, "resources": {"requests": {"storage": storage}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.volume]))
        # Root, with only the two capabilities it needs (CHOWN to hand the folders over,
        # FOWNER to set modes on a rerun): allowed by the namespace's `baseline` level.
        self.prepare = KubeObject(
            f"{name}-prepare", "batch/v1", "Job",
            metadata=meta(f"{name}-prepare", namespace, {APP_LABEL: "share-prepare"}),
            spec={"backoffLimit": 6, "activeDeadlineSeconds": 900, "template": {
                "metadata": {"labels": {APP_LABEL: "share-prepare"}},
                "spec": {
                    "restartPolicy": "OnFailure", **args.placement.pod_fields(),
                    "automountServiceAccountToken": False,
                    "securityContext": dict(DEFAULT_SECCOMP),
                    "containers": [{
                        "name": "prepare", "image": image,
                        "command": [IMAGE_PYTHON, "-c",
                                    prepare_script(TOP_FOLDERS, OWNER_UID, OWNER_GID)],
                        "workingDir": SHARE_MOUNT,
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"memory": "128Mi"}},
                        "securityContext": {"runAsUser": 0, "runAsGroup": 0,
                                            "runAsNonRoot": False,
                                            **restricted_container(non_root=False,
                                                                   add=("CHOWN", "FOWNER"))},
                        "volumeMounts": [{"name": "share", "mountPath": SHARE_MOUNT}]}],
                    "volumes": [{"name": "share",
                                 "persistentVolumeClaim": {"claimName": name}}]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.claim]))
        # The claim's name as an output of the prepare Job (pulumi-kubernetes awaits a Job
        # until it completes): a workload given this instead of the plain name is created
        # only once the folders exist (docs/architecture.md section 9: pass outputs, not names).
        self.ready_claim = pulumi.Output.all(self.claim.id, self.prepare.id).apply(
            lambda _: name)
        self.register_outputs({"claim": self.claim_name})
