"""`ComputeResource`: the handful of Compute Engine resources sdfleet makes, from plain props.

It registers exactly what the typed `pulumi_gcp.compute.<Kind>` classes register (type token
`gcp:compute/<kind>:<Kind>`, provider package and version). Why not the typed classes:
importing `pulumi_gcp.compute` (~300 resource modules) costs 1.6 s of CPU, a third of the
`make plan` budget (docs/architecture.md section 7), for a dozen resource kinds. Props use the provider's
camelCase names, as in `pulumi preview --json`; outputs are the props listed as `None`.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi_gcp import _utilities as gcp_utilities

KINDS = ("Network", "Subnetwork", "Router", "RouterNat", "Firewall", "GlobalAddress",
         # The load balancer (components/gcp/load_balancer.py).
         "HealthCheck", "BackendService", "ManagedSslCertificate", "URLMap", "TargetHttpsProxy",
         "TargetHttpProxy", "GlobalForwardingRule")

# Kinds whose SDK class has no `selfLink` output (pulumi_gcp 10.2.0 `RouterNat`).
NO_SELF_LINK = frozenset({"RouterNat"})


class ComputeResource(pulumi.CustomResource):
    """`ComputeResource("Network", name, {"autoCreateSubnetworks": False, ...})`."""

    def __init__(self, kind: str, resource_name: str, props: dict[str, Any],
                 outputs: tuple[str, ...] = (), opts: Optional[pulumi.ResourceOptions] = None):
        if kind not in KINDS:
            raise ValueError(f"ComputeResource kind {kind!r}; known: {', '.join(KINDS)}")
        token = f"gcp:compute/{kind[0].lower()}{kind[1:]}:{kind}"
        standard = ("name",) if kind in NO_SELF_LINK else ("name", "selfLink")
        all_props = {**{k: v for k, v in props.items() if v is not None},
                     **{k: None for k in (*standard, *outputs) if k not in props}}
        opts = pulumi.ResourceOptions.merge(gcp_utilities.get_resource_opts_defaults(), opts)
        super().__init__(token, resource_name, all_props, opts)

    def out(self, key: str) -> pulumi.Output[Any]:
        """An output property by its provider name (`address`, `selfLink`...)."""
        return getattr(self, key)
