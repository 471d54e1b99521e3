"""The sdfleet CrossGuard policies: invariants every preview of every stack must keep.

One module feeds both consumers:
- `policy/__main__.py` builds the real `PolicyPack` from `POLICIES` (`pulumi preview
  --policy-pack policy`);
- `policy/runner.py` calls the same policy objects' `validate` over the mock-engine plan of
  `make plan`.

So this module must import nothing from the program (the pack runs in its own virtualenv with
only `policy/requirements.txt`): it reads resource inputs (camelCase, as the engine sends them)
and, for the two policies that need stack settings, its policy config.

Stack settings (budget cap, cost-label keys, EKS CIDRs) come from, in order:
1. the policy's config (`PolicyConfigSchema` below): `make plan` passes the validated stack
   config this way, and `pulumi preview --policy-pack-config` can too;
2. the stack's own config, `sdfleet:platform` (the CLI hands policy packs the stack config and
   pulumi_policy loads it into `pulumi.runtime` config, so `pulumi preview --policy-pack policy`
   needs no extra file);
3. the stack config model's defaults (`BUDGET_DEFAULT_MAX_GPU_NODES` equals
   `components.config.BudgetConfig.max_gpu_nodes`; a test keeps them equal).

Unknown values (known only after deployment) raise pulumi_policy's `UnknownValueError` when
read; policies catch it where an unknown value cannot hide a violation (e.g. an IAM member that
is another resource's output is never the literal `allUsers`) and let it through otherwise,
which CrossGuard reports as "can't run policy during preview".
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Callable, Iterable, Mapping, Optional

from pulumi_policy import (EnforcementLevel, PolicyConfigSchema, PolicyResource,
                           ReportViolation, ResourceValidationArgs, ResourceValidationPolicy,
                           StackValidationArgs, StackValidationPolicy)
from pulumi_policy.proxy import UnknownValueError

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

# Same default as components.config.BudgetConfig.max_gpu_nodes (tests/policy keeps them equal).
BUDGET_DEFAULT_MAX_GPU_NODES = 16
# Regional GKE node pools without node locations spread over the region's default zones (3).
GKE_DEFAULT_ZONES_PER_REGION = 3

PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
PRIMITIVE_ROLES = ("roles/owner", "roles/editor")

_MISSING = object()


class Unknown:
    """Marks a value that is only known after deployment (see `read`)."""

    def __repr__(self) -> str:
        return "<known after deployment>"


UNKNOWN = Unknown()


def read(props: Any, *path: Any, default: Any = None) -> Any:
    """props[path...] or `default` when absent; `UNKNOWN` when a step is unknown in preview."""
    value = props
    for key in path:
        try:
            if isinstance(key, int):
                if not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
                    return default
                value = value[key] if -len(value) <= key < len(value) else _MISSING
            elif isinstance(value, Mapping):
                value = value[key] if key in value else _MISSING
            else:
                return default
        except UnknownValueError:
            return UNKNOWN
        if value is _MISSING or value is None:
            return default
    return value


def items(value: Any) -> list:
    """A list input as a list ([] when absent or unknown)."""
    if value is None or isinstance(value, (Unknown, str, Mapping)):
        return []
    out = []
    for i in range(len(value)):
        try:
            out.append(value[i])
        except UnknownValueError:
            out.append(UNKNOWN)
    return out


def mapping(value: Any) -> dict:
    """A map input as a plain dict of its known entries ({} when absent or unknown)."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key in value:
        try:
            out[key] = value[key]
        except UnknownValueError:
            out[key] = UNKNOWN
    return out


def as_json(value: Any) -> Any:
    """A JSON-document input (IAM policy data, provider config) parsed; None when not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def stack_platform_config() -> dict:
    """`sdfleet:platform` of the stack being analyzed, when the CLI handed it to the pack."""
    try:
        import pulumi.runtime

        raw = pulumi.runtime.get_config("sdfleet:platform")
    except Exception:  # noqa: BLE001 (no runtime config: fall back to defaults)
        return {}
    parsed = as_json(raw) if raw else None
    return parsed if isinstance(parsed, dict) else {}


def _setting(config: Mapping[str, Any], key: str, from_stack: Callable[[dict], Any],
             default: Any) -> Any:
    if key in config and config[key] is not None:
        return config[key]
    value = from_stack(stack_platform_config())
    return default if value is None else value


def resource_policy(name: str, description: str,
                    types: Iterable[str] | Callable[[str], bool],
                    check: Callable[[str, Any, ResourceValidationArgs], Iterable[str]],
                    level: EnforcementLevel = MANDATORY,
                    config_schema: Optional[PolicyConfigSchema] = None) -> ResourceValidationPolicy:
    """A ResourceValidationPolicy for some resource types (type tokens, or a predicate on the
    token): `check(type, props, args)` yields one message per violation."""
    applies = types if callable(types) else frozenset(types).__contains__

    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not applies(args.resource_type):
            return
        for message in check(args.resource_type, args.props, args):
            report_violation(message, None)

    return ResourceValidationPolicy(name=name, description=description, validate=validate,
                                    enforcement_level=level, config_schema=config_schema)


# --- GCP types ----------------------------------------------------------------------------------

FUNCTION_TYPES = ("gcp:cloudfunctionsv2/function:Function", "gcp:cloudfunctions/function:Function")
CLUSTER = "gcp:container/cluster:Cluster"
NODE_POOL = "gcp:container/nodePool:NodePool"
FIREWALL = "gcp:compute/firewall:Firewall"
REDIS_INSTANCE = "gcp:redis/instance:Instance"
REDIS_CLUSTER = "gcp:redis/cluster:Cluster"
MEMORYSTORE_INSTANCE = "gcp:memorystore/instance:Instance"

# IAM on functions, Cloud Run and buckets, by how the grantee is given.
_PUBLIC_SURFACE_MEMBER = (
    "gcp:cloudfunctions/functionIamMember:FunctionIamMember",
    "gcp:cloudfunctionsv2/functionIamMember:FunctionIamMember",
    "gcp:cloudrun/iamMember:IamMember",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    "gcp:cloudrunv2/jobIamMember:JobIamMember",
    "gcp:cloudrunv2/workerPoolIamMember:WorkerPoolIamMember",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:storage/managedFolderIamMember:ManagedFolderIamMember",
)
_PUBLIC_SURFACE_BINDING = tuple(t.replace("Member", "Binding") for t in _PUBLIC_SURFACE_MEMBER)
_PUBLIC_SURFACE_POLICY = tuple(t.replace("Member", "Policy") for t in _PUBLIC_SURFACE_MEMBER)
# Legacy ACLs grant by `entity` (allUsers / allAuthenticatedUsers).
_PUBLIC_SURFACE_ACL = ("gcp:storage/bucketAccessControl:BucketAccessControl",
                       "gcp:storage/defaultObjectAccessControl:DefaultObjectAccessControl",
                       "gcp:storage/objectAccessControl:ObjectAccessControl",
                       "gcp:storage/bucketACL:BucketACL", "gcp:storage/defaultObjectACL:DefaultObjectACL",
                       "gcp:storage/objectACL:ObjectACL")


def _policy_data_bindings(props: Any) -> list[dict]:
    data = as_json(read(props, "policyData"))
    if not isinstance(data, dict):
        return []
    return [b for b in data.get("bindings", []) if isinstance(b, dict)]


def _check_public_members(type_: str, props: Any, _args) -> Iterable[str]:
    grantees: list[Any] = []
    if type_ in _PUBLIC_SURFACE_MEMBER:
        grantees.append(read(props, "member"))
    elif type_ in _PUBLIC_SURFACE_BINDING:
        grantees += items(read(props, "members"))
    elif type_ in _PUBLIC_SURFACE_POLICY:
        grantees += [m for b in _policy_data_bindings(props) for m in b.get("members", [])]
    elif type_ in _PUBLIC_SURFACE_ACL:
        # entity "allUsers", roleEntities "READER:allUsers", predefinedAcl "publicRead"
        grantees += [read(props, "entity"), read(props, "predefinedAcl")]
        grantees += items(read(props, "roleEntities"))
    for grantee in grantees:
        # An unknown grantee is another resource's output (an account's email), never a literal.
        if not isinstance(grantee, str):
            continue
        if any(p.lower() in grantee.lower() for p in PUBLIC_MEMBERS) or grantee in (
                "publicRead", "publicReadWrite", "authenticatedRead"):
            yield f"grants access to '{grantee}': every endpoint authenticates its callers"


def _check_function_ingress(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == "gcp:cloudfunctionsv2/function:Function":
        ingress = read(props, "serviceConfig", "ingressSettings", default="ALLOW_ALL")
    else:
        ingress = read(props, "ingressSettings", default="ALLOW_ALL")
    if ingress != "ALLOW_INTERNAL_ONLY":
        yield (f"ingressSettings is {ingress!r} (the provider default is ALLOW_ALL); "
               "functions take only internal traffic: ALLOW_INTERNAL_ONLY")


def _check_redis(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == REDIS_INSTANCE:
        if read(props, "authEnabled", default=False) is not True:
            yield "authEnabled must be true (Redis AUTH; the provider default is off)"
        mode = read(props, "transitEncryptionMode", default="DISABLED")
        if mode != "SERVER_AUTHENTICATION":
            yield f"transitEncryptionMode is {mode!r}; in-transit encryption needs SERVER_AUTHENTICATION"
    elif type_ == MEMORYSTORE_INSTANCE:
        auth = read(props, "authorizationMode", default="AUTH_DISABLED")
        if auth in ("AUTH_DISABLED", None):
            yield f"authorizationMode is {auth!r}; use IAM_AUTH"
        mode = read(props, "transitEncryptionMode", default="TRANSIT_ENCRYPTION_DISABLED")
        if mode != "SERVER_AUTHENTICATION":
            yield f"transitEncryptionMode is {mode!r}; in-transit encryption needs SERVER_AUTHENTICATION"
    elif type_ == REDIS_CLUSTER:
        auth = read(props, "authorizationMode", default="AUTH_MODE_DISABLED")
        if auth != "AUTH_MODE_IAM_AUTH":
            yield f"authorizationMode is {auth!r}; use AUTH_MODE_IAM_AUTH"
        mode = read(props, "transitEncryptionMode", default="TRANSIT_ENCRYPTION_MODE_DISABLED")
        if mode != "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION":
            yield (f"transitEncryptionMode is {mode!r}; in-transit encryption needs "
                   "TRANSIT_ENCRYPTION_MODE_SERVER_AUTHENTICATION")


def _autopilot(props: Any) -> bool:
    # Autopilot clusters always have private-capable nodes, Workload Identity and Shielded Nodes.
    return read(props, "enableAutopilot") is True


def _check_private_nodes(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        if _autopilot(props):
            private = read(props, "privateClusterConfig", "enablePrivateNodes")
            if private is False:
                yield "privateClusterConfig.enablePrivateNodes is false"
            return
        private = read(props, "privateClusterConfig", "enablePrivateNodes")
        if private is not True and not isinstance(private, Unknown):
            yield ("privateClusterConfig.enablePrivateNodes must be true: nodes get no external "
                   "IP (egress goes through Cloud NAT)")
        for pool in items(read(props, "nodePools")):
            if read(pool, "networkConfig", "enablePrivateNodes") is False:
                yield f"inline node pool {read(pool, 'name')!r} sets networkConfig.enablePrivateNodes false"
    elif read(props, "networkConfig", "enablePrivateNodes") is False:
        yield "networkConfig.enablePrivateNodes is false: this pool's nodes would get external IPs"


def _check_workload_identity(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        if _autopilot(props):
            return
        pool = read(props, "workloadIdentityConfig", "workloadPool")
        if not pool:
            yield ("workloadIdentityConfig.workloadPool must be set (<project>.svc.id.goog): pods "
                   "get their own identities, never the node's")
        configs = [read(props, "nodeConfig")] + [read(p, "nodeConfig") for p in items(read(props, "nodePools"))]
    else:
        configs = [read(props, "nodeConfig")]
    for node_config in configs:
        mode = read(node_config, "workloadMetadataConfig", "mode")
        if mode == "GCE_METADATA":
            yield ("nodeConfig.workloadMetadataConfig.mode is GCE_METADATA: pods could read the "
                   "node's credentials; use GKE_METADATA")


def _check_shielded_nodes(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ == CLUSTER:
        # The provider defaults enableShieldedNodes to true; only an explicit false turns it off.
        if read(props, "enableShieldedNodes") is False:
            yield "enableShieldedNodes is false"
        configs = [read(props, "nodeConfig")] + [read(p, "nodeConfig") for p in items(read(props, "nodePools"))]
    else:
        configs = [read(props, "nodeConfig")]
    for node_config in configs:
        if read(node_config, "shieldedInstanceConfig", "enableSecureBoot") is False \
                and read(node_config, "shieldedInstanceConfig", "enableIntegrityMonitoring") is False:
            yield "nodeConfig.shieldedInstanceConfig turns off both secure boot and integrity monitoring"


# --- GPU node pools (GKE, EKS managed node groups, Karpenter) ----------------------------------

# Accelerator-optimized GCE families come with their GPUs attached (no guestAccelerators needed).
GCE_GPU_FAMILIES = ("a2", "a3", "a4", "g2", "g4")
EKS_NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
KARPENTER_NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
KARPENTER_NODE_POOL_TYPES = (KARPENTER_NODE_POOL, "kubernetes:karpenter.sh/v1beta1:NodePool")
GPU_RESOURCE = "nvidia.com/gpu"


def gke_gpu_count(node_config: Any) -> int:
    """GPUs per node of a GKE node config (0: not a GPU pool)."""
    count = 0
    for acc in items(read(node_config, "guestAccelerators")):
        n = read(acc, "count", default=0)
        count += int(n) if isinstance(n, (int, float)) else 1
    machine = read(node_config, "machineType", default="")
    if not count and isinstance(machine, str) and machine.split("-")[0] in GCE_GPU_FAMILIES:
        count = 1
    return count


def aws_gpu_instance(instance_type: str) -> bool:
    """g4dn.xlarge, g5.2xlarge, p4d.24xlarge... (GPU families start with g or p and a digit)."""
    family = instance_type.split(".")[0]
    return len(family) >= 2 and family[0] in "gp" and family[1].isdigit()


def _eks_group_is_gpu(props: Any) -> bool:
    ami = read(props, "amiType", default="")
    if isinstance(ami, str) and ("GPU" in ami or "NVIDIA" in ami):
        return True
    return any(isinstance(t, str) and aws_gpu_instance(t) for t in items(read(props, "instanceTypes")))


_KARPENTER_GPU_KEYS = ("karpenter.k8s.aws/instance-gpu-count", "karpenter.k8s.aws/instance-gpu-name",
                       "karpenter.k8s.aws/instance-gpu-manufacturer")


def karpenter_is_gpu(props: Any) -> bool:
    if GPU_RESOURCE in mapping(read(props, "spec", "limits")):
        return True
    for req in items(read(props, "spec", "template", "spec", "requirements")):
        key, values = read(req, "key"), [v for v in items(read(req, "values")) if isinstance(v, str)]
        if key in _KARPENTER_GPU_KEYS and read(req, "operator") != "DoesNotExist":
            return True
        if key == "karpenter.k8s.aws/instance-category" and any(v in ("g", "p") for v in values):
            return True
        if key == "karpenter.k8s.aws/instance-family" and any(aws_gpu_instance(v + ".x") for v in values):
            return True
        if key == "node.kubernetes.io/instance-type" and any(aws_gpu_instance(v) for v in values):
            return True
    return False


def _has_gpu_taint(taints: list, effects: tuple[str, ...]) -> bool:
    return any(read(t, "key") == GPU_RESOURCE and read(t, "effect") in effects for t in taints)


_GKE_TAINT_EFFECTS = ("NO_SCHEDULE", "NO_EXECUTE")
_K8S_TAINT_EFFECTS = ("NoSchedule", "NoExecute")


def _gke_pools(type_: str, props: Any) -> list[tuple[str, Any]]:
    """(label, pool props) of the GKE node pools a resource defines, GPU or not."""
    if type_ == NODE_POOL:
        return [("", props)]
    return [(f"inline node pool {read(p, 'name')!r}: ", p) for p in items(read(props, "nodePools"))]


def _check_gpu_tainted(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ in (NODE_POOL, CLUSTER):
        for label, pool in _gke_pools(type_, props):
            config = read(pool, "nodeConfig")
            if gke_gpu_count(config) and not _has_gpu_taint(items(read(config, "taints")), _GKE_TAINT_EFFECTS):
                yield (f"{label}GPU pool without the {GPU_RESOURCE} NO_SCHEDULE taint: pods that "
                       "need no GPU would hold GPU nodes")
    elif type_ == EKS_NODE_GROUP:
        if _eks_group_is_gpu(props) and not _has_gpu_taint(items(read(props, "taints")), _GKE_TAINT_EFFECTS):
            yield f"GPU node group without the {GPU_RESOURCE} NO_SCHEDULE taint"
    elif type_ in KARPENTER_NODE_POOL_TYPES:
        if karpenter_is_gpu(props) and not _has_gpu_taint(
                items(read(props, "spec", "template", "spec", "taints")), _K8S_TAINT_EFFECTS):
            yield f"GPU NodePool without the {GPU_RESOURCE} NoSchedule taint in spec.template.spec.taints"


def _check_gpu_autoscaled(type_: str, props: Any, _args) -> Iterable[str]:
    if type_ in (NODE_POOL, CLUSTER):
        for label, pool in _gke_pools(type_, props):
            if not gke_gpu_count(read(pool, "nodeConfig")):
                continue
            autoscaling = read(pool, "autoscaling")
            top = read(autoscaling, "totalMaxNodeCount", default=read(autoscaling, "maxNodeCount"))
            if not autoscaling or not top:
                yield (f"{label}GPU pool is not autoscaled: set autoscaling with a max node count "
                       "so idle GPU nodes go away")
    elif type_ == EKS_NODE_GROUP:
        if _eks_group_is_gpu(props):
            low, high = read(props, "scalingConfig", "minSize"), read(props, "scalingConfig", "maxSize")
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and high <= low:
                yield f"GPU node group has a fixed size (minSize {low} = maxSize {high})"
    elif type_ in KARPENTER_NODE_POOL_TYPES:
        if karpenter_is_gpu(props) and GPU_RESOURCE not in mapping(read(props, "spec", "limits")):
            yield f"GPU NodePool without spec.limits[{GPU_RESOURCE!r}]: Karpenter could scale without bound"


# --- Network exposure -----------------------------------------------------------------------------

SG_TYPES = ("aws:ec2/securityGroup:SecurityGroup", "aws:ec2/securityGroupRule:SecurityGroupRule",
            "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def _internet(cidr: Any) -> bool:
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
            if _internet(cidr):
                yield (f"ingress allowed from {cidr}: nothing is reachable from the internet except "
                       "through the load balancer (use its health-check ranges 35.191.0.0/16, 130.211.0.0/22)")
    elif type_ == "aws:ec2/securityGroup:SecurityGroup":
        for rule in items(read(props, "ingress")):
            for cidr in items(read(rule, "cidrBlocks")) + items(read(rule, "ipv6CidrBlocks")):
                if _internet(cidr):
                    yield f"ingress from {cidr} on ports {read(rule, 'fromPort')}-{read(rule, 'toPort')}"
    elif type_ == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if read(props, "type") == "ingress":
            for cidr in items(read(props, "cidrBlocks")) + items(read(props, "ipv6CidrBlocks")):
                if _internet(cidr):
                    yield f"ingress from {cidr}"
    else:
        for key in ("cidrIpv4", "cidrIpv6"):
            if _internet(read(props, key)):
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


# --- IAM ---------------------------------------------------------------------------------------------

def _is_gcp_iam(type_: str) -> bool:
    return type_.startswith("gcp:") and "iam" in type_.lower() and not type_.split(":")[-1].startswith("get")


def _check_primitive_roles(type_: str, props: Any, _args) -> Iterable[str]:
    roles = [read(props, "role")] + [b.get("role") for b in _policy_data_bindings(props)]
    for role in roles:
        if role in PRIMITIVE_ROLES:
            yield f"grants the primitive role {role}: grant the narrow predefined roles instead"


# --- AWS ---------------------------------------------------------------------------------------------

EKS_CLUSTER_TYPES = ("aws:eks/cluster:Cluster", "eks:index:Cluster")


def _check_eks_endpoint(type_: str, props: Any, args: ResourceValidationArgs) -> Iterable[str]:
    if type_ == "aws:eks/cluster:Cluster":
        public = read(props, "vpcConfig", "endpointPublicAccess", default=True)
        cidrs = read(props, "vpcConfig", "publicAccessCidrs")
    else:  # the pulumi-eks component takes the same settings at its top level
        public = read(props, "endpointPublicAccess", default=True)
        cidrs = read(props, "publicAccessCidrs")
    if public is False or isinstance(public, Unknown):
        return
    cidrs = [c for c in items(cidrs) if isinstance(c, str)]
    if not cidrs:
        yield ("public EKS API endpoint open to 0.0.0.0/0 (the provider default): make it private "
               "or list publicAccessCidrs")
        return
    for cidr in cidrs:
        if _internet(cidr):
            yield f"public EKS API endpoint allows {cidr}"
    allowed = _setting(args.get_config(), "allowedCidrs",
                       lambda p: (p.get("aws") or {}).get("publicAccessCidrs"), None)
    if allowed is not None:
        for cidr in cidrs:
            if cidr not in allowed:
                yield f"public EKS API endpoint allows {cidr}, which is not in the stack's publicAccessCidrs"


S3_BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ACCOUNT_PAB = "aws:s3/accountPublicAccessBlock:AccountPublicAccessBlock"
S3_SSE_TYPES = ("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
                "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2")
_PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


def _attached_to(bucket: PolicyResource, resources: list[PolicyResource], types: tuple[str, ...]) -> list[PolicyResource]:
    """Resources of `types` that configure `bucket`: they depend on it or name it literally."""
    name = read(bucket.props, "bucket")
    out = []
    for r in resources:
        if r.resource_type not in types:
            continue
        target = read(r.props, "bucket")
        if any(d.urn == bucket.urn for d in r.dependencies) or (isinstance(name, str) and target == name):
            out.append(r)
    return out


def _validate_s3_public_access(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    account = [r for r in args.resources if r.resource_type == S3_ACCOUNT_PAB
               and all(read(r.props, f) is True for f in _PAB_FLAGS)]
    for bucket in args.resources:
        if bucket.resource_type not in S3_BUCKET_TYPES or account:
            continue
        blocks = _attached_to(bucket, args.resources, (S3_PAB,))
        if not blocks:
            report_violation(f"bucket {bucket.name} has no BucketPublicAccessBlock", bucket.urn)
            continue
        off = [f for f in _PAB_FLAGS if all(read(b.props, f) is not True for b in blocks)]
        if off:
            report_violation(f"bucket {bucket.name}: public access block leaves {', '.join(off)} off",
                             bucket.urn)


def _validate_s3_encryption(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in args.resources:
        if bucket.resource_type not in S3_BUCKET_TYPES:
            continue
        inline = read(bucket.props, "serverSideEncryptionConfiguration", "rule",
                      "applyServerSideEncryptionByDefault", "sseAlgorithm")
        if inline in SSE_ALGORITHMS:
            continue
        configs = _attached_to(bucket, args.resources, S3_SSE_TYPES)
        algorithms = [read(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                      for c in configs for rule in items(read(c.props, "rules"))]
        if not any(a in SSE_ALGORITHMS or isinstance(a, Unknown) for a in algorithms):
            report_violation(f"bucket {bucket.name} has no server-side encryption configuration "
                             f"({'/'.join(SSE_ALGORITHMS)})", bucket.urn)


SQS_QUEUE = "aws:sqs/queue:Queue"
SQS_REDRIVE = "aws:sqs/redrivePolicy:RedrivePolicy"
SQS_REDRIVE_ALLOW = "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy"


def _validate_sqs_dlq(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every queue has a DLQ, except dead-letter queues themselves.

    A queue's redrive policy names its DLQ by ARN, unknown during preview: the link is the
    dependency. Which dependency is which comes from property dependencies (the engine sends
    them); without them (an offline plan records none) a RedrivePolicy resource counts for every
    queue it depends on and a RedriveAllowPolicy marks nothing.
    """
    queues = [r for r in args.resources if r.resource_type == SQS_QUEUE]
    queue_urns = {q.urn for q in queues}
    with_dlq: set[str] = set()
    dead_letter: set[str] = set()

    def prop_deps(r: PolicyResource, prop: str) -> set[str]:
        return {d.urn for d in (r.property_dependencies or {}).get(prop, [])} & queue_urns

    for q in queues:
        if read(q.props, "redrivePolicy") is not None:
            with_dlq.add(q.urn)
            dead_letter |= {d.urn for d in q.dependencies} & queue_urns
        if read(q.props, "redriveAllowPolicy") is not None:
            dead_letter.add(q.urn)
    for r in args.resources:
        if r.resource_type == SQS_REDRIVE:
            if r.property_dependencies:
                with_dlq |= prop_deps(r, "queueUrl")
                dead_letter |= prop_deps(r, "redrivePolicy")
            else:
                with_dlq |= {d.urn for d in r.dependencies} & queue_urns
        elif r.resource_type == SQS_REDRIVE_ALLOW:
            dead_letter |= prop_deps(r, "queueUrl")
    for q in queues:
        if q.urn not in with_dlq and q.urn not in dead_letter:
            report_violation(f"queue {q.name} has no dead-letter queue (redrivePolicy): a message "
                             "that keeps failing would be retried forever", q.urn)


# --- Cost labels (advisory) -------------------------------------------------------------------------

# Where each cost-relevant resource type keeps its labels or tags.
LABEL_PATHS: dict[str, tuple[str, ...]] = {
    CLUSTER: ("resourceLabels",),
    NODE_POOL: ("nodeConfig", "resourceLabels"),
    "gcp:filestore/instance:Instance": ("labels",),
    REDIS_INSTANCE: ("labels",),
    MEMORYSTORE_INSTANCE: ("labels",),
    "gcp:cloudfunctionsv2/function:Function": ("labels",),
    "gcp:cloudfunctions/function:Function": ("labels",),
    "gcp:storage/bucket:Bucket": ("labels",),
    "gcp:compute/globalAddress:GlobalAddress": ("labels",),
    "gcp:compute/address:Address": ("labels",),
    "gcp:compute/instance:Instance": ("labels",),
    "gcp:artifactregistry/repository:Repository": ("labels",),
    "gcp:secretmanager/secret:Secret": ("labels",),
    "aws:eks/cluster:Cluster": ("tags",),
    EKS_NODE_GROUP: ("tags",),
    "aws:ec2/vpc:Vpc": ("tags",),
    "aws:ec2/natGateway:NatGateway": ("tags",),
    "aws:ec2/eip:Eip": ("tags",),
    "aws:s3/bucket:Bucket": ("tags",),
    "aws:s3/bucketV2:BucketV2": ("tags",),
    SQS_QUEUE: ("tags",),
    "aws:sns/topic:Topic": ("tags",),
    "aws:efs/fileSystem:FileSystem": ("tags",),
    "aws:apigateway/restApi:RestApi": ("tags",),
    "aws:apigateway/stage:Stage": ("tags",),
    "aws:lambda/function:Function": ("tags",),
    "aws:ec2/launchTemplate:LaunchTemplate": ("tags",),
    # Karpenter puts these tags on every GPU instance it launches.
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": ("spec", "tags"),
}


def _provider_defaults(args: ResourceValidationArgs) -> dict:
    provider = args.provider
    if provider is None:
        return {}
    labels = as_json(read(provider.props, "defaultLabels"))
    tags = as_json(read(provider.props, "defaultTags"))
    out = dict(labels) if isinstance(labels, dict) else {}
    if isinstance(tags, dict) and isinstance(tags.get("tags"), dict):
        out.update(tags["tags"])
    return out


def _check_cost_labels(type_: str, props: Any, args: ResourceValidationArgs) -> Iterable[str]:
    if type_.startswith("gcp:compute/") and read(props, "addressType") == "INTERNAL":
        return  # internal ranges (private services peering) cost nothing
    labels = read(props, *LABEL_PATHS[type_])
    if isinstance(labels, Unknown):
        return
    present = {**_provider_defaults(args), **mapping(labels)}
    required = _setting(args.get_config(), "requiredKeys", lambda p: list((p.get("labels") or {}).keys()), [])
    missing = [k for k in required if k not in present]
    if not present:
        yield f"no cost-allocation {LABEL_PATHS[type_][-1]}"
    elif missing:
        yield f"cost-allocation {LABEL_PATHS[type_][-1]} lack {', '.join(missing)}"


# --- GPU budget (stack) -------------------------------------------------------------------------------

def _zones(pool: Any, cluster: Optional[PolicyResource]) -> int:
    locations = items(read(pool, "nodeLocations"))
    if not locations and cluster is not None:
        locations = items(read(cluster.props, "nodeLocations"))
    if locations:
        return len(locations)
    location = read(pool, "location", default=read(cluster.props, "location") if cluster else None)
    # A zonal location (us-central1-a) has one zone; a region spreads over its default zones.
    if isinstance(location, str) and location.count("-") >= 2:
        return 1
    return GKE_DEFAULT_ZONES_PER_REGION


def _max_nodes(pool: Any, cluster: Optional[PolicyResource]) -> Optional[int]:
    autoscaling = read(pool, "autoscaling")
    total = read(autoscaling, "totalMaxNodeCount")
    if isinstance(total, (int, float)) and total:
        return int(total)
    per_zone = read(autoscaling, "maxNodeCount")
    if not isinstance(per_zone, (int, float)) or not per_zone:
        per_zone = read(pool, "nodeCount", default=read(pool, "initialNodeCount"))
    if isinstance(per_zone, (int, float)):
        return int(per_zone) * _zones(pool, cluster)
    return None


def _quantity(value: Any) -> Optional[int]:
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def gpu_node_capacity(resources: list[PolicyResource]) -> tuple[list[tuple[str, int]], list[str]]:
    """(what, max GPU nodes) per GPU capacity source, plus sources with no upper bound."""
    found: list[tuple[str, int]] = []
    unbounded: list[str] = []
    clusters = {r.urn: r for r in resources if r.resource_type == CLUSTER}
    for r in resources:
        if r.resource_type == NODE_POOL and gke_gpu_count(read(r.props, "nodeConfig")):
            cluster = next((clusters[d.urn] for d in r.dependencies if d.urn in clusters), None)
            n = _max_nodes(r.props, cluster)
            (found.append((f"node pool {r.name}", n)) if n is not None else unbounded.append(f"node pool {r.name}"))
        elif r.resource_type == CLUSTER:
            for pool in items(read(r.props, "nodePools")):
                if gke_gpu_count(read(pool, "nodeConfig")):
                    n = _max_nodes(pool, r)
                    label = f"cluster {r.name} node pool {read(pool, 'name')}"
                    (found.append((label, n)) if n is not None else unbounded.append(label))
            if gke_gpu_count(read(r.props, "nodeConfig")) and read(r.props, "removeDefaultNodePool") is not True:
                found.append((f"cluster {r.name} default pool", _max_nodes(r.props, r) or 0))
            # Node auto-provisioning: its GPU limit caps GPUs, hence GPU nodes.
            if read(r.props, "clusterAutoscaling", "enabled") is True:
                for limit in items(read(r.props, "clusterAutoscaling", "resourceLimits")):
                    kind = read(limit, "resourceType", default="")
                    if isinstance(kind, str) and kind.startswith("nvidia-"):
                        found.append((f"cluster {r.name} auto-provisioned {kind}",
                                      _quantity(read(limit, "maximum")) or 0))
        elif r.resource_type == EKS_NODE_GROUP and _eks_group_is_gpu(r.props):
            n = _quantity(read(r.props, "scalingConfig", "maxSize"))
            (found.append((f"node group {r.name}", n)) if n is not None else unbounded.append(f"node group {r.name}"))
        elif r.resource_type in KARPENTER_NODE_POOL_TYPES and karpenter_is_gpu(r.props):
            # Every GPU node has at least one GPU, so the GPU limit bounds the node count.
            n = _quantity(read(r.props, "spec", "limits", GPU_RESOURCE))
            (found.append((f"Karpenter NodePool {r.name} (limit {GPU_RESOURCE})", n)) if n is not None
             else unbounded.append(f"Karpenter NodePool {r.name}"))
    return found, unbounded


def _validate_gpu_budget(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    cap = _setting(args.get_config(), "maxGpuNodes",
                   lambda p: (p.get("budget") or {}).get("maxGpuNodes"), BUDGET_DEFAULT_MAX_GPU_NODES)
    found, unbounded = gpu_node_capacity(list(args.resources))
    for what in unbounded:
        report_violation(f"{what} has no upper bound on GPU nodes (budget: {cap})", None)
    total = sum(n for _, n in found)
    if total > cap:
        detail = ", ".join(f"{what}: {n}" for what, n in found)
        report_violation(f"up to {total} GPU nodes ({detail}) exceed budget.maxGpuNodes {cap}", None)


# --- The pack ------------------------------------------------------------------------------------------

GPU_POOL_TYPES = (NODE_POOL, CLUSTER, EKS_NODE_GROUP) + KARPENTER_NODE_POOL_TYPES

POLICIES = [
    resource_policy(
        "no-public-invokers",
        "No IAM member allUsers/allAuthenticatedUsers on Cloud Functions, Cloud Run or buckets.",
        _PUBLIC_SURFACE_MEMBER + _PUBLIC_SURFACE_BINDING + _PUBLIC_SURFACE_POLICY + _PUBLIC_SURFACE_ACL,
        _check_public_members),
    resource_policy(
        "functions-internal-ingress",
        "Cloud Functions take internal traffic only (ingressSettings ALLOW_INTERNAL_ONLY).",
        FUNCTION_TYPES, _check_function_ingress),
    resource_policy(
        "memorystore-auth-and-tls",
        "Memorystore has AUTH on and in-transit encryption on.",
        (REDIS_INSTANCE, MEMORYSTORE_INSTANCE, REDIS_CLUSTER), _check_redis),
    resource_policy(
        "gke-private-nodes",
        "GKE nodes are private (no external IPs).",
        (CLUSTER, NODE_POOL), _check_private_nodes),
    resource_policy(
        "gke-workload-identity",
        "GKE uses Workload Identity; no node pool exposes the node's metadata to pods.",
        (CLUSTER, NODE_POOL), _check_workload_identity),
    resource_policy(
        "gke-shielded-nodes",
        "GKE Shielded Nodes stay on.",
        (CLUSTER, NODE_POOL), _check_shielded_nodes),
    resource_policy(
        "gpu-pools-tainted",
        "GPU node pools carry the nvidia.com/gpu NoSchedule taint.",
        GPU_POOL_TYPES, _check_gpu_tainted),
    resource_policy(
        "gpu-pools-autoscaled",
        "GPU node pools are autoscaled with an upper bound.",
        GPU_POOL_TYPES, _check_gpu_autoscaled),
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
    resource_policy(
        "no-primitive-roles",
        "No primitive IAM roles (roles/owner, roles/editor).",
        _is_gcp_iam, _check_primitive_roles),
    StackValidationPolicy(
        name="s3-public-access-blocked",
        description="S3 buckets block all public access.",
        validate=_validate_s3_public_access, enforcement_level=MANDATORY),
    StackValidationPolicy(
        name="s3-encrypted",
        description="S3 buckets have a server-side encryption configuration.",
        validate=_validate_s3_encryption, enforcement_level=MANDATORY),
    StackValidationPolicy(
        name="sqs-dead-letter-queue",
        description="SQS queues have a dead-letter queue.",
        validate=_validate_sqs_dlq, enforcement_level=MANDATORY),
    resource_policy(
        "eks-endpoint-restricted",
        "The EKS API endpoint is private or restricted to the listed CIDRs.",
        EKS_CLUSTER_TYPES, _check_eks_endpoint,
        config_schema=PolicyConfigSchema(properties={
            "allowedCidrs": {"type": "array", "items": {"type": "string"},
                             "description": "CIDRs the public endpoint may allow (default: the "
                                            "stack's sdfleet:platform.aws.publicAccessCidrs)"}})),
    resource_policy(
        "cost-labels",
        "Cost-relevant resources carry the stack's cost-allocation labels or tags.",
        tuple(LABEL_PATHS), _check_cost_labels, level=ADVISORY,
        config_schema=PolicyConfigSchema(properties={
            "requiredKeys": {"type": "array", "items": {"type": "string"},
                             "description": "label/tag keys every such resource needs (default: "
                                            "the keys of the stack's sdfleet:platform.labels)"}})),
    StackValidationPolicy(
        name="gpu-node-budget",
        description="Total GPU nodes (GPU node pool maxima, Karpenter GPU limits) stay within "
                    "budget.maxGpuNodes.",
        validate=_validate_gpu_budget, enforcement_level=MANDATORY,
        config_schema=PolicyConfigSchema(properties={
            "maxGpuNodes": {"type": "integer", "minimum": 0,
                            "description": "the cap (default: the stack's "
                                           "sdfleet:platform.budget.maxGpuNodes, else 16)"}})),
]
