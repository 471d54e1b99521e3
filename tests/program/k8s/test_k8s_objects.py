"""Hand-registered Kubernetes objects (components/k8s/objects.py `KubeObject`) register what
the provider SDK's own classes register; and the shared store,
the router's secrets and the network policies."""

from __future__ import annotations

import importlib
import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pulumi_kubernetes
import pytest

from components.k8s.objects import type_token

NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
JOB = "kubernetes:batch/v1:Job"


# --- KubeObject against the provider SDK -----------------------------------------------------------

def _sdk_classes() -> dict[str, type]:
    """apiVersion/Kind -> the SDK's typed class, from the SDK's own YAML dispatch table
    (pulumi_kubernetes/yaml/yaml.py: `if gvk == "<apiVersion>/<Kind>": from <module> import`)."""
    source = Path(pulumi_kubernetes.__file__).parent / "yaml" / "yaml.py"
    table = {}
    for m in re.finditer(r'if gvk == "([^"]+)":\s*\n\s*#[^\n]*\n\s*from (pulumi_kubernetes\.[\w.]+) '
                         r'import (\w+)', source.read_text()):
        table[m.group(1)] = (m.group(2), m.group(3))
    assert len(table) > 100, "the SDK's dispatch table was not found"
    return table


def test_kube_objects_register_the_sdk_type_tokens(dev_update, plan):
    table = _sdk_classes()
    from tools.preview import read_stack_config
    aws = plan(read_stack_config("aws-dev"), preview=False, stack="aws-dev")
    checked = 0
    for result in (dev_update, aws):
        for r in result.resources:
            if not r.custom or r.type.startswith(("kubernetes:helm.sh/", "pulumi:providers")) \
                    or not r.type.startswith("kubernetes:"):
                continue
            api_version, kind = r.inputs["apiVersion"], r.inputs["kind"]
            assert r.type == type_token(api_version, kind)
            gvk = f"{api_version}/{kind}"
            if gvk in table:
                module, name = table[gvk]
                cls = getattr(importlib.import_module(module), name)
                assert cls.pulumi_type == r.type, (gvk, cls.pulumi_type, r.type)
            else:
                # A custom resource: pulumi_kubernetes.apiextensions.CustomResource registers
                # `kubernetes:<apiVersion>:<kind>` (apiextensions/CustomResource.py).
                assert "/" in api_version and "." in api_version.split("/")[0], gvk
                assert r.type == f"kubernetes:{api_version}:{kind}"
            checked += 1
    assert checked >= 30, checked


def test_type_token_of_the_core_group_matches_the_sdk():
    from pulumi_kubernetes.core.v1 import Namespace
    from pulumi_kubernetes.rbac.v1 import RoleBinding
    assert type_token("v1", "Namespace") == Namespace.pulumi_type
    assert type_token("rbac.authorization.k8s.io/v1", "RoleBinding") == RoleBinding.pulumi_type


# --- Item 6: the router's SecretProviderClass ------------------------------------------------------

def test_secret_provider_class_is_the_csi_driver_resource(dev_update):
    # The CRD is the Secrets Store CSI driver's (kubernetes-sigs/secrets-store-csi-driver,
    # deploy/secrets-store.csi.x-k8s.io_secretproviderclasses.yaml: group
    # secrets-store.csi.x-k8s.io, version v1); GKE's add-on serves it with provider `gke`.
    # Only the pod's CSI volume names the add-on's driver.
    (spc,) = [r for r in dev_update.resources if r.type.endswith(":SecretProviderClass")]
    assert spc.inputs["apiVersion"] == "secrets-store.csi.x-k8s.io/v1"
    assert spc.inputs["spec"]["provider"] == "gke"
    router = dev_update.one("kubernetes:apps/v1:Deployment", "router").inputs
    (volume,) = [v for v in router["spec"]["template"]["spec"]["volumes"] if "csi" in v]
    assert volume["csi"]["driver"] == "secrets-store-gke.csi.k8s.io"
    assert volume["csi"]["volumeAttributes"]["secretProviderClass"] == \
        spc.inputs["metadata"]["name"]
    assert spc.inputs["metadata"]["namespace"] == router["metadata"]["namespace"]


# --- only the load balancer reaches the router ------------------------------------

# Google Cloud docs, "Firewall rules" (load-balancing/docs/firewall-rules): a global external
# Application Load Balancer's health checks and GFE proxies (zonal NEG backends) come from these.
GOOGLE_LB_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}


def test_router_admits_only_the_load_balancer(dev_update):
    policy = dev_update.one(NETWORK_POLICY, "only-load-balancer").inputs
    router = dev_update.one("kubernetes:apps/v1:Deployment", "router").inputs
    service = dev_update.one("kubernetes:core/v1:Service", "router").inputs
    assert policy["metadata"]["namespace"] == router["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= \
        router["spec"]["template"]["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert {peer["ipBlock"]["cidr"] for peer in rule["from"]} == GOOGLE_LB_RANGES
    assert all(set(peer) == {"ipBlock"} and "except" not in peer["ipBlock"] for peer in rule["from"])
    (port,) = rule["ports"]
    # NEG traffic goes to the pod port the Service targets.
    assert port == {"protocol": "TCP", "port": service["spec"]["ports"][0]["targetPort"]}


# --- the shared store ------------------------------------------

def test_share_is_exported_to_the_node_range_only(dev_update, dev_config):
    network = dev_config["sdfleet:platform"]["network"]
    (export,) = dev_update.one("gcp:filestore/instance:Instance").inputs["fileShares"][
        "nfsExportOptions"]
    assert export["ipRanges"] == [network["nodesCidr"]]
    pods = ipaddress.ip_network(network["podsCidr"])
    assert not any(ipaddress.ip_network(r).overlaps(pods) for r in export["ipRanges"])
    # Filestore NfsExportOptions: anonUid/anonGid only go with ROOT_SQUASH.
    assert export["squashMode"] == "NO_ROOT_SQUASH" and "anonUid" not in export


def _share_mounts(result) -> list[tuple[str, str | None]]:
    """(workload, subPath) of every mount of the shared store's claim."""
    claim = result.one("kubernetes:core/v1:PersistentVolumeClaim", "shared").inputs["metadata"]["name"]
    mounts = []
    for r in result.resources:
        if not r.type.startswith("kubernetes:") or r.type.endswith(":PersistentVolumeClaim"):
            continue
        stack = [r.inputs]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("containers"), list):
                    volumes = {v["name"] for v in node.get("volumes") or []
                               if (v.get("persistentVolumeClaim") or {}).get("claimName") == claim}
                    for c in node["containers"]:
                        for m in c.get("volumeMounts") or []:
                            if m["name"] in volumes:
                                mounts.append((r.name, m.get("subPath")))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return mounts


def test_every_folder_mounted_from_the_share_is_made_first(dev_update):
    """Item 3: pods mount `models/` and `users/` by subPath; on a new share only root can
    make them. The prepare Job (root, CHOWN+FOWNER only) makes exactly those, and everything
    that mounts one is ordered after it."""
    from components.k8s.shared_volume import OWNER_UID, TOP_FOLDERS
    prepare = dev_update.one(JOB, "prepare")
    mounts = _share_mounts(dev_update)
    sub_paths = {sub for _, sub in mounts if sub}
    assert sub_paths == set(TOP_FOLDERS), (sub_paths, TOP_FOLDERS)
    for workload, sub in mounts:
        if workload == prepare.name:
            assert sub is None
            continue
        registration = next(r for r in dev_update.resources if r.name == workload and r.custom)
        assert prepare.urn in registration.dependencies, f"{workload} does not wait for prepare"
    (container,) = prepare.inputs["spec"]["template"]["spec"]["containers"]
    ctx = container["securityContext"]
    assert ctx["runAsUser"] == 0 and ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "FOWNER"]}
    # every other pod that mounts the share runs as the folders' owner
    for workload, _ in mounts:
        if workload == prepare.name:
            continue
        registration = next(r for r in dev_update.resources if r.name == workload and r.custom)
        assert f'"runAsUser": {OWNER_UID}' in str(registration.inputs).replace("'", '"')


def test_prepare_script_makes_the_folders(tmp_path):
    """The script the Job runs, run for real (as this user: chown to oneself is allowed)."""
    from components.k8s.shared_volume import OWNER_GID, OWNER_UID, TOP_FOLDERS, prepare_script
    script = prepare_script(TOP_FOLDERS, os.getuid(), os.getgid())
    for _ in range(2):   # idempotent: a rerun of the Job changes nothing and does not fail
        out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                             text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    for name, mode in TOP_FOLDERS.items():
        info = (tmp_path / name).stat()
        assert (info.st_mode & 0o777, info.st_uid) == (mode, os.getuid())
    assert (OWNER_UID, OWNER_GID) == (1000, 1000)


def test_prepare_script_carries_the_owner(tmp_path):
    from components.k8s.shared_volume import OWNER_GID, OWNER_UID, TOP_FOLDERS, prepare_script
    assert "os.chown(name, 1000, 1000)" in prepare_script(TOP_FOLDERS, OWNER_UID, OWNER_GID)


# --- what a WebUI pod may open ---------------------------------------------------

def test_webui_pods_may_open_cluster_dns_and_the_api_server_only(dev_update, dev_config):
    policy = dev_update.one(NETWORK_POLICY, "egress").inputs
    fleet = dev_update.one("kubernetes:agones.dev/v1:Fleet").inputs
    pod_labels = fleet["spec"]["template"]["spec"]["template"]["metadata"]["labels"]
    assert policy["metadata"]["namespace"] == fleet["metadata"]["namespace"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Egress"]
    dns, api = policy["spec"]["egress"]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}
    (peer,) = dns["to"]
    assert "ipBlock" not in peer   # no address range: not the NFS server, Redis or metadata
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}}
    assert peer["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}
    # The Agones SDK sidecar's API server: the control-plane range, HTTPS only.
    assert api == {"to": [{"ipBlock": {"cidr": dev_config["sdfleet:platform"]["network"]["controlPlaneCidr"]}}],
                   "ports": [{"protocol": "TCP", "port": 443}]}


def test_nfs_redis_and_metadata_are_unreachable_from_webui_pods(dev_update):
    """Evaluate the policies: which (address, port) may a WebUI pod open?"""
    policies = [r.inputs for r in dev_update.of_type(NETWORK_POLICY)
                if r.inputs["metadata"]["namespace"] == "sdfleet-webui"
                and "Egress" in r.inputs["spec"]["policyTypes"]]
    assert policies, "no egress policy selects WebUI pods: everything is open"

    from testing.emulators.netpol import Endpoint, Pod, possibly_allowed
    fleet = dev_update.one("kubernetes:agones.dev/v1:Fleet").inputs
    pod = Pod("sdfleet-webui", fleet["spec"]["template"]["spec"]["template"]["metadata"]["labels"])

    def allowed(ip: str, port: int, protocol: str = "TCP") -> bool:
        return possibly_allowed(policies, pod, Endpoint(ip=ip, port=port, protocol=protocol))

    assert not allowed("169.254.169.254", 80)            # metadata server
    assert not allowed("169.254.169.252", 988)           # GKE metadata server (WI)
    assert not allowed("10.30.0.2", 2049)                # NFS (Filestore, private services)
    assert not allowed("10.30.0.2", 111)                 # portmapper
    assert not allowed("10.30.0.5", 6378)                # Memorystore (TLS port)
    assert not allowed("8.8.8.8", 443)                   # the internet


@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_plan_never_imports_the_typed_kind_modules(stack):
    """Why KubeObject exists (components/k8s/objects.py): the typed classes of
    `pulumi_kubernetes.<group>.<version>` cost over a second of the `make plan` budget."""
    from tools.preview import ROOT
    code = ("import sys; from tools.preview import run_program, read_stack_config; "
            f"r = run_program(read_stack_config({stack!r}), stack={stack!r}); "
            "assert len(r.resources) > 100; "
            "print(sorted(m for m in sys.modules if m.startswith('pulumi_kubernetes.') "
            "and len(m.split('.')) >= 3 and m.split('.')[2][:1] == 'v' "
            "and m.split('.')[1] not in ('helm', 'apiextensions')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
