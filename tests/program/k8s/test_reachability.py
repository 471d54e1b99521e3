"""What each container of every pod the program renders must reach, and must not.

The table says what each program needs (or must never get); the verdicts come from the
rendered NetworkPolicies, evaluated with Kubernetes's semantics (testing/emulators/netpol.py),
never from a hand-written list of allowed peers. A pod the table does not know fails: a new
workload gets its row before it lands.
"""

from __future__ import annotations

import ipaddress

import pytest

from testing.emulators.agones import AgonesEmulator, SdkUnreachable
from testing.emulators.netpol import Endpoint, Pod, possibly_allowed, surely_allowed

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
FLEET = "kubernetes:agones.dev/v1:Fleet"
WORKLOAD_KINDS = ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job", FLEET)
# Agones adds this container to every game server pod (pkg/gameservers/pod.go: sdkserver
# sidecar "agones-gameserver-sidecar"); it is not in the rendered template.
AGONES_SIDECAR = "agones-gameserver-sidecar"
# Google's load balancer and health-check ranges (GKE "Health checks" / firewall docs).
LOAD_BALANCER = Endpoint(ip="35.191.0.10", port=0)


def _host(cidr: str, n: int) -> str:
    return str(ipaddress.ip_network(cidr)[n])


@pytest.fixture
def world(dev_update, dev_config):
    """Named destinations, with addresses from the stack's own config."""
    network = dev_config["sdfleet:platform"]["network"]
    fleet = dev_update.one(FLEET).inputs
    ns = fleet["metadata"]["namespace"]
    webui_labels = fleet["spec"]["template"]["spec"]["template"]["metadata"]["labels"]
    router = next(r.inputs for r in dev_update.of_type("kubernetes:apps/v1:Deployment")
                  if r.inputs["metadata"]["name"].endswith("router"))
    router_pod = Pod(router["metadata"]["namespace"],
                     router["spec"]["template"]["metadata"]["labels"], ip="10.16.1.5")
    other_webui = Pod(ns, webui_labels, ip="10.16.2.9")
    services = network.get("privateServicesCidr", "10.30.0.0/20")
    return {
        "api-server": Endpoint(ip=_host(network["controlPlaneCidr"], 2), port=443),
        "api-server-other-port": Endpoint(ip=_host(network["controlPlaneCidr"], 2), port=10250),
        "cluster-dns": Endpoint(pod=Pod("kube-system", {"k8s-app": "kube-dns"}, ip="10.16.0.3"),
                                port=53, protocol="UDP"),
        "nfs": Endpoint(ip=_host(services, 2), port=2049),
        "portmapper": Endpoint(ip=_host(services, 2), port=111),
        "redis": Endpoint(ip=_host(services, 5), port=6378),
        "metadata-server": Endpoint(ip="169.254.169.254", port=80),
        "gke-metadata-server": Endpoint(ip="169.254.169.252", port=988),
        "internet-https": Endpoint(ip="142.250.1.1", port=443),
        "other-webui-pod": Endpoint(pod=other_webui, port=7860),
        "other-webui-supervisor": Endpoint(pod=other_webui, port=7861),
        "router-pod": Endpoint(pod=router_pod, port=8080),
        "a-node": Endpoint(ip=_host(network["nodesCidr"], 7), port=10250),
        "_router_pod": router_pod, "_webui_ns": ns, "_webui_labels": webui_labels,
    }


# (workload name part, container) -> (must reach, must not reach). Containers of one pod
# share its network, so "must not" is checked for the whole pod.
TABLE = {
    ("webui", AGONES_SIDECAR): (["api-server", "cluster-dns"], []),
    ("webui", "webui"): (["cluster-dns"],
                         ["nfs", "portmapper", "redis", "metadata-server", "gke-metadata-server",
                          "internet-https", "other-webui-pod", "other-webui-supervisor",
                          "router-pod", "a-node", "api-server-other-port"]),
    ("webui", "user-sync"): (["cluster-dns"], []),
    ("router", "router"): (["cluster-dns", "redis", "internet-https", "metadata-server",
                            "other-webui-pod"], []),
    ("router", "verifier"): (["internet-https", "metadata-server"], []),
    ("model-sync", "fetch"): (["cluster-dns", "internet-https"], []),
    ("prepare", "prepare"): ([], []),
    ("placeholders", "pause"): ([], []),
}


def _pods(result):
    """(workload name, containers, Pod) for every pod template the plan renders."""
    for kind in WORKLOAD_KINDS:
        for r in result.of_type(kind):
            obj = r.inputs
            template = obj["spec"]["template"]
            if kind == FLEET:
                template = template["spec"]["template"]
                containers = [c["name"] for c in template["spec"]["containers"]] + [AGONES_SIDECAR]
            else:
                containers = [c["name"] for c in template["spec"]["containers"]]
            labels = (template.get("metadata") or {}).get("labels") or {}
            yield obj["metadata"]["name"], containers, Pod(obj["metadata"]["namespace"], labels)


def _row(workload: str, container: str):
    for (suffix, name), row in TABLE.items():
        if (workload.endswith(suffix) or f"-{suffix}-" in workload) and container == name:
            return row
    return None


def test_every_container_of_every_pod_reaches_what_it_must_and_nothing_it_must_not(
        dev_update, world):
    policies = [r.inputs for r in dev_update.of_type(NETWORK_POLICY)]
    checked, problems = 0, []
    for workload, containers, pod in _pods(dev_update):
        for container in containers:
            row = _row(workload, container)
            if row is None:
                problems.append(f"{workload}/{container}: no row in the reachability table")
                continue
            must, must_not = row
            for name in must:
                checked += 1
                if not surely_allowed(policies, pod, world[name]):
                    problems.append(f"{workload}/{container} cannot reach {name}")
            for name in must_not:
                checked += 1
                if possibly_allowed(policies, pod, world[name]):
                    problems.append(f"{workload}/{container} may reach {name}")
    assert not problems, "\n".join(problems)
    assert checked >= 20


def test_only_the_router_and_the_load_balancer_reach_their_pods(dev_update, world):
    policies = [r.inputs for r in dev_update.of_type(NETWORK_POLICY)]
    webui = Pod(world["_webui_ns"], world["_webui_labels"], ip="10.16.3.3")
    stranger = Pod("default", {"app": "anything"}, ip="10.16.4.4")
    assert surely_allowed(policies, world["_router_pod"], Endpoint(pod=webui, port=7860))
    assert not possibly_allowed(policies, stranger, Endpoint(pod=webui, port=7860))
    assert not possibly_allowed(policies, world["_router_pod"], Endpoint(pod=webui, port=7861))
    # The router's port: from the load balancer's ranges only, not from other pods.
    router = world["_router_pod"]
    assert not possibly_allowed(policies, stranger, Endpoint(pod=router, port=8080))


def test_the_table_bites_a_dns_only_policy(dev_update, world):
    """The old policy (cluster DNS only) must fail the table: the SDK sidecar row."""
    policies = [r.inputs for r in dev_update.of_type(NETWORK_POLICY)]
    dns_only = []
    for p in policies:
        p = {**p, "spec": dict(p["spec"])}
        if "Egress" in p["spec"].get("policyTypes", []):
            p["spec"]["egress"] = [rule for rule in p["spec"]["egress"]
                                   if all("ipBlock" not in peer for peer in rule["to"])]
        dns_only.append(p)
    pod = next(pod for w, _, pod in _pods(dev_update) if w.endswith("webui"))
    assert surely_allowed(policies, pod, world["api-server"])
    assert not possibly_allowed(dns_only, pod, world["api-server"])


def test_a_game_server_becomes_ready_through_the_rendered_policies(dev_update, world):
    """The SDK sidecar reports Ready through the API server; the emulator refuses it when the
    pod's egress policy does not admit the API server, as the cluster would."""
    policies = [r.inputs for r in dev_update.of_type(NETWORK_POLICY)]
    pod = next(pod for w, _, pod in _pods(dev_update) if w.endswith("webui"))
    emu = AgonesEmulator(namespace=pod.namespace)
    emu.use_network(policies, api_server=world["api-server"])
    emu.add_game_server("gs-1", state="Scheduled")
    assert emu.sdk_ready("gs-1", pod)["status"]["state"] == "Ready"

    without_api = [p for p in policies if "Egress" not in p["spec"].get("policyTypes", [])]
    without_api.append({"metadata": {"namespace": pod.namespace},
                        "spec": {"podSelector": {"matchLabels": pod.labels},
                                 "policyTypes": ["Egress"], "egress": []}})
    emu.use_network(without_api, api_server=world["api-server"])
    emu.add_game_server("gs-2", state="Scheduled")
    with pytest.raises(SdkUnreachable):
        emu.sdk_ready("gs-2", pod)
    assert emu.game_server("gs-2")["status"]["state"] == "Scheduled"
