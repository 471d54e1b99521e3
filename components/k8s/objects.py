"""One constructor for every plain Kubernetes object: `KubeObject`.

It registers exactly what the typed `pulumi_kubernetes.<group>.<version>.<Kind>` classes
register (type token `kubernetes:<group>/<version>:<Kind>`, `core` for the core group, the
same provider package and version), from a manifest-shaped dict. Why not the typed classes:
importing `pulumi_kubernetes.core.v1` and its siblings costs over a second, a fifth of the
budget for `make plan` (docs/architecture.md section 7), and manifests read the same as the YAML every
Kubernetes user knows. Helm releases use the typed `helm.v3.Release`.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi_kubernetes import _utilities as k8s_utilities


def type_token(api_version: str, kind: str) -> str:
    group, _, version = api_version.rpartition("/")
    return f"kubernetes:{group or 'core'}/{version}:{kind}"


class KubeObject(pulumi.CustomResource):
    """A Kubernetes object from its manifest: `KubeObject(name, "apps/v1", "Deployment", ...)`."""

    metadata: pulumi.Output[dict]

    def __init__(self, resource_name: str, api_version: str, kind: str, *,
                 metadata: dict, opts: Optional[pulumi.ResourceOptions] = None, **fields: Any):
        opts = pulumi.ResourceOptions.merge(k8s_utilities.get_resource_opts_defaults(), opts)
        props = {"apiVersion": api_version, "kind": kind, "metadata": metadata, **fields,
                 "status": None}
        super().__init__(type_token(api_version, kind), resource_name, props, opts)


def meta(name: str, namespace: str | pulumi.Output[str] | None = None,
         labels: dict | None = None, annotations: dict | None = None) -> dict:
    out: dict[str, Any] = {"name": name, "labels": {"app.kubernetes.io/part-of": "sdfleet",
                                                     **(labels or {})}}
    if namespace is not None:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = annotations
    return out
