"""Kubernetes NetworkPolicy semantics, as the cluster's datapath applies them.

Evaluates whether a connection is admitted by a set of rendered NetworkPolicy objects, per
the networking.k8s.io/v1 API reference ("NetworkPolicy", "NetworkPolicySpec",
"NetworkPolicyPeer", "NetworkPolicyPort") and the concept page's rules:

- a pod is isolated for egress (ingress) when at least one policy in its namespace selects
  it and lists "Egress" ("Ingress") in policyTypes; an isolated pod may open (accept) only
  what some rule of some selecting policy admits; policies are additive;
- policyTypes defaults to ["Ingress"], plus "Egress" when the spec has egress rules;
- a rule with no `to`/`from` admits every peer; a rule with no `ports` admits every port;
- a peer with both namespaceSelector and podSelector matches pods selected by both; a peer
  with only podSelector matches pods of the policy's own namespace; an ipBlock matches by
  address (cidr minus except); whether it also matches pod addresses differs between
  implementations (the reference says ipBlock is meant for cluster-external addresses), so
  callers ask both ways: a connection that must work may not rely on it, one that must be
  refused must be refused either way (`ip_blocks_match_pods`);
- a port without protocol is TCP; `endPort` makes a range.
Loopback traffic inside a pod never crosses a policy.

Used by the Agones emulator (an SDK sidecar's calls to the API server go through the pod's
egress policy) and by the reachability table of every pod the program renders.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict
    ip: str = "10.8.0.10"
    # Labels of the pod's namespace; the API server sets kubernetes.io/metadata.name.
    namespace_labels: dict = field(default_factory=dict)

    def ns_labels(self) -> dict:
        return {"kubernetes.io/metadata.name": self.namespace, **self.namespace_labels}


@dataclass(frozen=True)
class Endpoint:
    """What a connection is opened to: an address outside the cluster's pods, or a pod."""
    port: int
    protocol: str = "TCP"
    ip: str | None = None
    pod: Pod | None = None


def selects(selector: dict | None, labels: dict) -> bool:
    """A LabelSelector (matchLabels, matchExpressions); an empty selector selects all."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def policy_types(spec: dict) -> list[str]:
    if spec.get("policyTypes"):
        return spec["policyTypes"]
    return ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]


def _port_admits(ports: list | None, endpoint: Endpoint) -> bool:
    if not ports:
        return True
    for port in ports:
        if port.get("protocol", "TCP") != endpoint.protocol:
            continue
        number = port.get("port")
        if number is None:
            return True
        if isinstance(number, str):
            continue    # named ports: not used by the program; never admitted here
        if number <= endpoint.port <= port.get("endPort", number):
            return True
    return False


def _peer_admits(peer: dict, policy_namespace: str, other: Endpoint | Pod,
                 ip_blocks_match_pods: bool) -> bool:
    if "ipBlock" in peer:
        if isinstance(other, Endpoint) and other.pod is None:
            ip = other.ip
        else:
            pod = other.pod if isinstance(other, Endpoint) else other
            ip = pod.ip if ip_blocks_match_pods else None
        if ip is None:
            return False
        address = ipaddress.ip_address(ip)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except") or [])
    pod = other.pod if isinstance(other, Endpoint) else other
    if pod is None:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], pod.ns_labels()):
            return False
    elif pod.namespace != policy_namespace:
        return False
    return selects(peer.get("podSelector", {}), pod.labels)


def _selecting(policies: list[dict], pod: Pod, kind: str) -> list[dict]:
    return [p for p in policies
            if p["metadata"].get("namespace", "default") == pod.namespace
            and selects(p["spec"].get("podSelector", {}), pod.labels)
            and kind in policy_types(p["spec"])]


def egress_allowed(policies: list[dict], source: Pod, to: Endpoint,
                   ip_blocks_match_pods: bool = False) -> bool:
    selecting = _selecting(policies, source, "Egress")
    if not selecting:
        return True
    return any(_port_admits(rule.get("ports"), to)
               and (not rule.get("to")
                    or any(_peer_admits(peer, p["metadata"].get("namespace", "default"), to,
                                        ip_blocks_match_pods)
                           for peer in rule["to"]))
               for p in selecting for rule in p["spec"].get("egress") or [])


def ingress_allowed(policies: list[dict], source: Pod | Endpoint, to: Pod, port: int,
                    protocol: str = "TCP", ip_blocks_match_pods: bool = False) -> bool:
    selecting = _selecting(policies, to, "Ingress")
    if not selecting:
        return True
    endpoint = Endpoint(port=port, protocol=protocol)
    return any(_port_admits(rule.get("ports"), endpoint)
               and (not rule.get("from")
                    or any(_peer_admits(peer, p["metadata"].get("namespace", "default"), source,
                                        ip_blocks_match_pods)
                           for peer in rule["from"]))
               for p in selecting for rule in p["spec"].get("ingress") or [])


def connection_allowed(policies: list[dict], source: Pod, to: Endpoint,
                       ip_blocks_match_pods: bool = False) -> bool:
    """Both ends must admit it: the source's egress, and the destination pod's ingress."""
    if not egress_allowed(policies, source, to, ip_blocks_match_pods):
        return False
    if to.pod is not None:
        return ingress_allowed(policies, source, to.pod, to.port, to.protocol,
                               ip_blocks_match_pods)
    return True


def surely_allowed(policies: list[dict], source: Pod, to: Endpoint) -> bool:
    """Admitted whichever way the datapath reads ipBlock against pod addresses."""
    return all(connection_allowed(policies, source, to, m) for m in (False, True))


def possibly_allowed(policies: list[dict], source: Pod, to: Endpoint) -> bool:
    return any(connection_allowed(policies, source, to, m) for m in (False, True))
