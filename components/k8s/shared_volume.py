"""The Filestore share as a ReadWriteMany volume in one namespace."""

from __future__ import annotations

import pulumi

from components.k8s.objects import KubeObject, meta


class SharedVolume(pulumi.ComponentResource):
    """`sdfleet:k8s:SharedVolume`: PersistentVolume (NFS) + its claim."""

    def __init__(self, name: str, namespace: pulumi.Input[str], server: pulumi.Input[str],
                 share: str, capacity_gb: int, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:SharedVolume", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        storage = f"{capacity_gb}Gi"
        self.volume = KubeObject(
            f"{name}-pv", "v1", "PersistentVolume", metadata=meta(f"{name}"),
            spec={"capacity": {"storage": storage}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "mountOptions": ["hard", "nfsvers=3"],
                  "nfs": {"server": server, "path": f"/{share}"}},
            opts=child)
        self.claim_name = name
        self.claim = KubeObject(
            f"{name}-pvc", "v1", "PersistentVolumeClaim", metadata=meta(name, namespace),
            spec={"accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "volumeName": name, "resources": {"requests": {"storage": storage}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.volume]))
        self.register_outputs({"claim": self.claim_name})
