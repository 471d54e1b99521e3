"""Network exposure: no ingress from the internet, no LoadBalancer Services (the load balancer
in front of IAP is the only way in), the Agones allocator never exposed without mTLS."""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable, Mapping

from .define import resource_policy
from .inputs import Unknown, items, mapping, read

FIREWALL = "gcp:compute/firewall:Firewall"

SG_TYPES = ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/securityGroupRule:SecurityGroupRule",
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def is_internet(cidr: Any) -> bool:
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


def _check_open_ingress(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == FIREWALL:
        if read(props, "direction", default="INGRESS") != "INGRESS" or read(props, "disabled") is True:
            return
        if not items(read(props, "allows")):
            return  # a deny rule from anywhere only closes things
        ranges = items(read(props, "sourceRanges"))
        if not ranges and not items(read(props, "sourceTags")) \
                and not items(read(props, "sourceServiceAccounts")) \
                and not isinstance(read(props, "sourceRanges"), Unknown):
            yield ("ingress rule without sourceRanges, sourceTags or sourceServiceAccounts: GCP "
                   "applies it to 0.0.0.0/0; only load-balancer health-check ranges come from outside")
        for cidr in ranges:
            if is_internet(cidr):
                yield (f"ingress allowed from {cidr}: nothing is reachable from the internet except "
                       "through the load balancer (use its health-check ranges 35.191.0.0/16, 130.211.0.0/22)")
    elif type_ == "aws:ec2/securityGroup:SecurityGroup":
        for rule in items(read(props, "ingress")):
            for cidr in items(read(rule, "cidrBlocks")) + items(read(rule, "ipv6CidrBlocks")):
                if is_internet(cidr):
                    yield f"ingress from {cidr} on ports {read(rule, 'fromPort')}-{read(rule, 'toPort')}"
    elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if read(props, "type") == "ingress":
            for cidr in items(read(props, "cidrBlocks")) + items(read(props, "ipv6CidrBlocks")):
                if is_internet(cidr):
                    yield f"ingress from {cidr}"
    else:
        for key in ("cidrIpv4", "cidrIpv6"):
            if is_internet(read(props, key)):
                yield f"ingress from {read(props, key)}"


SERVICE = "kubernetes:core/v1:Service"
HELM_TYPES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")


def _is_agones(props: Any) -> bool:
    chart = read(props, "chart", default="")
    return isinstance(chart, str) and chart.rstrip("/").split("/")[-1].split(":")[0] == "agones"


def agones_exposure(values: Any) -> dict[str, str]:
    """Service type of each Agones service the chart would install ({} when not installed).

    Chart defaults (agones values.yaml): the allocator and both ping services are installed and
    are LoadBalancers unless the values say otherwise.
    """
    agones = read(values, "agones", default={})
    out: dict[str, str] = {}
    if read(agones, "allocator", "install", default=True) is not False:
        out["agones.allocator.service.serviceType"] = read(
            agones, "allocator", "service", "serviceType", default="LoadBalancer")
    if read(agones, "ping", "install", default=True) is not False:
        for proto in ("http", "udp"):
            if read(agones, "ping", proto, "expose", default=True) is not False:
                out[f"agones.ping.{proto}.serviceType"] = read(
                    agones, "ping", proto, "serviceType", default="LoadBalancer")
    return out


def _helm_values(props: Any) -> Any:
    """A release's values; an unknown value raises UnknownValueError on purpose, so CrossGuard
    reports that it cannot check the release during preview instead of passing it."""
    return props["values"] if "values" in props and props["values"] is not None else {}


def _load_balancers_in_values(values: Any, path: str = "") -> Iterable[str]:
    """Paths of `serviceType`/`type: LoadBalancer` under any `service`-like key of Helm values."""
    for key, value in mapping(values).items():
        here = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            yield from _load_balancers_in_values(value, here)
        elif value == "LoadBalancer" and key in ("serviceType", "type"):
            yield here


def _check_no_load_balancers(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == SERVICE:
        kind = read(props, "spec", "type", default="ClusterIP")
        if kind == "LoadBalancer":
            yield "Service of type LoadBalancer: the Ingress (IAP) is the only way in"
        return
    values = _helm_values(props)
    found = set(_load_balancers_in_values(values))
    if _is_agones(props):
        found |= {k for k, v in agones_exposure(values).items() if v == "LoadBalancer"}
    for path in sorted(found):
        yield f"Helm value {path} makes a LoadBalancer Service: the Ingress (IAP) is the only way in"


def _check_agones_allocator(type_: str, props: Any, _args) -> Iterable[str]:
    if not _is_agones(props):
        return
    values = _helm_values(props)
    exposure = agones_exposure(values).get("agones.allocator.service.serviceType")
    mtls_off = read(values, "agones", "allocator", "disableMTLS", default=False) is True
    if exposure in ("LoadBalancer", "NodePort") and mtls_off:
        yield (f"the Agones allocator is a {exposure} with agones.allocator.disableMTLS true: "
               "anyone who reaches it could allocate GPUs")
    elif exposure in ("LoadBalancer", "NodePort") and read(values, "agones", "allocator", "disableTLS") is True:
        yield f"the Agones allocator is a {exposure} with TLS off"


POLICIES = [
    resource_policy(
        "no-open-ingress",
        "No firewall or security group ingress from 0.0.0.0/0 (only load-balancer health-check ranges "
        "come from outside).",
        (FIREWALL,) + SG_TYPES, _check_open_ingress),
    resource_policy(
        "no-load-balancer-services",
        "No Kubernetes Service of type LoadBalancer, directly or through Helm values (the Ingress is "
        "the only way in).",
        (SERVICE,) + HELM_TYPES, _check_no_load_balancers),
    resource_policy(
        "agones-allocator-mtls",
        "The Agones allocator is never a LoadBalancer or NodePort without mTLS.",
        HELM_TYPES, _check_agones_allocator),
]
