"""The platform's namespaces, with Pod Security Admission levels."""

from __future__ import annotations

import pulumi

from components.k8s.objects import KubeObject, meta


class Namespaces(pulumi.ComponentResource):
    """`sdfleet:k8s:Namespaces`: name -> Pod Security level to enforce."""

    def __init__(self, name: str, levels: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:Namespaces", name, None, opts)
        self.namespaces = {
            ns: KubeObject(f"{name}-{ns}", "v1", "Namespace", metadata=meta(ns, labels={
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/warn": "restricted"}),
                opts=pulumi.ResourceOptions(parent=self))
            for ns, level in levels.items()
        }
        self.register_outputs({})
