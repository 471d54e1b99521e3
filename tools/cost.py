"""Monthly cost estimate of a stack: the resources its plan registers, priced from tools/prices.yaml.

`make plan` prints it (tools/plan.py). The estimate reads the plan that tools/preview.py records
(every resource the program registers, with its inputs) and prices each resource by its type:
node pools by their machine type, disks, accelerators and minimum size; the warm GPU buffer and
its peak hours from the FleetAutoscaler; placeholders from the Deployments that hold GPUs;
functions by their memory, CPU and minimum instances; forwarding rules, NAT gateways, connectors,
scheduler jobs, Filestore and Memorystore instances as registered; for AWS: EKS clusters, node
groups, NAT gateways and their addresses, EFS, API Gateway at its usage plan's quota, KEDA's
queue polling, KMS keys. Nothing is restated from components/: change a setting there and the
estimate follows.

Rules:
- prices come only from the price table; a machine type, accelerator, tier or region missing
  there is listed in `missing` and left out of the total, never guessed;
- a resource type this module does not know is listed in `missing` too (`resource type ...`),
  so a new billable resource is never silently free; types with no charge of their own, and
  those billed only by use, are listed below with the reason;
- usage that the plan does not say (how long a culler pass takes, how many GB of models) is a
  named constant below, and each line's note says what it assumed;
- Spot pools are priced at on-demand rates (an upper bound; the table lists no Spot prices).

Every value read from the plan comes from the validated stack config through the components
(tools/plan.py validates before it runs the program), so cron expressions and durations here are
ones the config models accepted; a value this module still cannot read is reported, not guessed.
"""

from __future__ import annotations

import calendar
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

PRICES_PATH = Path(__file__).with_name("prices.yaml")
UNKNOWN_MARK = "(known after deployment)"  # what tools/preview.py records for unknown values

# --- Usage the plan does not say (each line's note repeats what it assumed) ------------------------
SECONDS_PER_SCHEDULED_RUN = 2.0      # one culler pass over a few hundred identities
MODEL_STORE_GB = 100                 # models on EFS for the AWS batch variant
LAMBDA_SECONDS_PER_JOB = 0.2         # the submit Lambda validates and publishes
SNS_PUBLISHES_PER_JOB = 1            # the submit Lambda publishes each job once

# --- Upstream defaults for inputs a resource may leave out ------------------------------------------
# KEDA ScaledObject/ScaledJob `pollingInterval` default: 30 s (keda.sh/docs/latest/reference/
# scaledobject-spec, "pollingInterval: 30 # Optional. Default: 30 seconds").
KEDA_DEFAULT_POLLING_SECONDS = 30
# aws.eks.NodeGroup `diskSize` default: 20 GiB for Linux node groups (pulumi-aws eks/nodeGroup docs).
EKS_NODE_GROUP_DEFAULT_DISK_GB = 20
# aws.lambda.Function `memorySize` default: 128 MB (pulumi-aws lambda/function docs).
LAMBDA_DEFAULT_MEMORY_MB = 128
# GKE node pools: boot disk pd-balanced, 100 GB unless set (pulumi-gcp container NodePool nodeConfig).
GKE_DEFAULT_DISK_TYPE = "pd-balanced"
GKE_DEFAULT_DISK_GB = 100
# A regional cluster without nodeLocations runs its pools in the region's default zones (3).
GKE_DEFAULT_ZONES_PER_REGION = 3
# Cloud Run functions (gen2): the vCPU a memory size gets when availableCpu is not set
# (cloud.google.com/functions/docs/configuring/memory, "Configure memory and vCPU limits").
FUNCTION_DEFAULT_VCPU_BY_MIB = ((128, 0.083), (256, 0.167), (512, 0.333), (1024, 0.583),
                                (2048, 1.0), (4096, 2.0), (8192, 2.0), (16384, 4.0), (32768, 8.0))
FUNCTION_DEFAULT_MEMORY_MIB = 256

DAYS_PER_MONTH = 365 / 12
WEEKS_PER_MONTH = 365 / 12 / 7
REFERENCE_YEAR = 2025                # any non-leap year: only its calendar is used

GPU = "nvidia.com/gpu"


@lru_cache(maxsize=1)
def price_table(path: str = str(PRICES_PATH)) -> dict:
    """The price table, read once per process."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)


# --- Cron: how many hours a week the peak window covers, how often a job runs ---------------------
# The expressions come from the validated config (components/config.py checks them); this only
# counts the times they name.

_NAMES = {
    "dow": {n: i for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
    "month": {n: i + 1 for i, n in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                                "AUG", "SEP", "OCT", "NOV", "DEC"])},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("dom", 1, 31), ("month", 1, 12), ("dow", 0, 7))


def _cron_field(text: str, name: str, lo: int, hi: int) -> tuple[set[int], bool]:
    """(values, restricted) of one cron field: *, n, a-b, lists, /step, month/day names."""
    values: set[int] = set()
    names = _NAMES.get(name, {})

    def number(token: str) -> int:
        value = names.get(token.upper(), None)
        value = int(token) if value is None else value
        if not lo <= value <= hi:
            raise ValueError(f"cron {name} {token!r} is outside {lo}-{hi}")
        return value

    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = number(a), number(b)
        else:
            start = number(base)
            end = hi if step else start
        values.update(range(start, end + 1, int(step) if step else 1))
    if name == "dow" and 7 in values:
        values = (values - {7}) | {0}  # 7 is Sunday too
    return values, text != "*"


def _cron(expr: str) -> dict[str, tuple[set[int], bool]]:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expr!r} needs 5 fields")
    return {name: _cron_field(text, name, lo, hi) for text, (name, lo, hi) in zip(parts, _FIELDS)}


def _cron_days(fields: dict) -> list[date]:
    """Days of the reference year on which the cron fires (dom and dow OR-ed when both set)."""
    (doms, dom_set), (months, _), (dows, dow_set) = fields["dom"], fields["month"], fields["dow"]
    days, day = [], date(REFERENCE_YEAR, 1, 1)
    while day.year == REFERENCE_YEAR:
        if day.month in months:
            dom_ok, dow_ok = day.day in doms, (day.isoweekday() % 7) in dows
            if (dom_ok or dow_ok) if (dom_set and dow_set) else (dom_ok and dow_ok):
                days.append(day)
        day += timedelta(days=1)
    return days


def runs_per_month(expr: str) -> float:
    fields = _cron(expr)
    per_day = len(fields["minute"][0]) * len(fields["hour"][0])
    return len(_cron_days(fields)) * per_day / 12


def duration_hours(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", text)
    if not match or not text:
        raise ValueError(f"duration {text!r}: expected e.g. 10h or 1h30m")
    return int(match.group(1) or 0) + int(match.group(2) or 0) / 60


def window_hours_per_week(start_cron: str, duration: str) -> float:
    """Average hours per week inside windows that open at `start_cron` and last `duration`
    (overlapping windows counted once; the time zone shifts the windows, not their length)."""
    fields = _cron(start_cron)
    length = round(duration_hours(duration) * 60)
    starts_in_day = sorted(h * 60 + m for h in fields["hour"][0] for m in fields["minute"][0])
    year_minutes = (366 if calendar.isleap(REFERENCE_YEAR) else 365) * 1440
    covered = bytearray(year_minutes + length + 1)
    for day in _cron_days(fields):
        offset = (day - date(REFERENCE_YEAR, 1, 1)).days * 1440
        begin = end = None
        for start in starts_in_day:  # merge overlapping windows before marking them
            s, e = offset + start, offset + start + length
            if end is not None and s <= end:
                end = max(end, e)
                continue
            if begin is not None:
                covered[begin:end] = b"\x01" * (end - begin)
            begin, end = s, e
        if begin is not None:
            covered[begin:end] = b"\x01" * (end - begin)
    # Windows that run past the year's end wrap onto its start, like the next year's.
    tail = covered[year_minutes:]
    total = covered[:year_minutes].count(1) + sum(1 for i, v in enumerate(tail) if v and not covered[i])
    return total / 60 / (year_minutes / 1440 / 7)


# --- Reading the plan ---------------------------------------------------------------------------------

def read(value: Any, *path: Any, default: Any = None) -> Any:
    """value[path...], or `default` when a step is absent or unknown (known after deployment)."""
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return default
    return default if value is None or value == UNKNOWN_MARK else value


def number(value: Any) -> Optional[float]:
    """A count or size input as a number (Kubernetes quantities like "1" included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def memory_mib(text: Any) -> Optional[float]:
    """"512M", "512Mi", "1G", "1Gi" as MiB (Cloud Run functions treat M and Mi alike)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([MG])i?B?", str(text or ""), re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * (1024 if match.group(2).upper() == "G" else 1)


@dataclass
class Sheet:
    hours: float
    lines: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    usage_billed: list[str] = field(default_factory=list)

    def add(self, item: str, monthly: float, note: str = "") -> None:
        self.lines.append({"item": item, "monthlyUsd": round(monthly, 2), "note": note})

    def miss(self, what: str) -> None:
        if what not in self.missing:
            self.missing.append(what)

    def lookup(self, table: dict, key: Any, what: str) -> Optional[Any]:
        if isinstance(key, str) and key in table:
            return table[key]
        self.miss(what)
        return None


@dataclass
class Plan:
    """The plan's resources by type, and what each pricer has consumed."""
    resources: list
    by_type: dict[str, list] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self):
        for r in self.resources:
            self.by_type[r.type].append(r)

    def of(self, *types: str) -> list:
        return [r for t in types for r in self.by_type.get(t, [])]


# --- Which resource types cost money --------------------------------------------------------------
# Priced below, each by what its inputs say.
PRICED = {
    "gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool",
    "gcp:filestore/instance:Instance", "gcp:redis/instance:Instance",
    "gcp:compute/routerNat:RouterNat", "gcp:compute/globalForwardingRule:GlobalForwardingRule",
    "gcp:compute/forwardingRule:ForwardingRule", "gcp:cloudfunctionsv2/function:Function",
    "gcp:vpcaccess/connector:Connector", "gcp:cloudscheduler/job:Job",
    "aws:eks/cluster:Cluster", "aws:eks/nodeGroup:NodeGroup", "aws:ec2/natGateway:NatGateway",
    "aws:ec2/eip:Eip", "aws:efs/fileSystem:FileSystem", "aws:kms/key:Key",
    "aws:lambda/function:Function", "aws:apigateway/usagePlan:UsagePlan", "aws:sqs/queue:Queue",
}

# No charge of their own: configuration, identity, networking glue, and what runs on nodes that
# are priced already (every Kubernetes object except the few that make cloud resources, below).
NO_CHARGE_PREFIXES = ("sdfleet:", "pulumi:", "random:", "kubernetes:", "command:", "tls:")
NO_CHARGE = {
    # GCP
    "gcp:projects/service:Service", "gcp:projects/iAMMember:IAMMember",
    "gcp:serviceaccount/account:Account", "gcp:serviceaccount/iAMMember:IAMMember",
    "gcp:compute/network:Network", "gcp:compute/subnetwork:Subnetwork",
    "gcp:compute/firewall:Firewall", "gcp:compute/router:Router",
    "gcp:servicenetworking/connection:Connection",
    "gcp:cloudrunv2/serviceIamMember:ServiceIamMember",
    "gcp:cloudfunctionsv2/functionIamMember:FunctionIamMember",
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember",
    "gcp:secretmanager/secretIamMember:SecretIamMember",
    "gcp:storage/bucketIAMMember:BucketIAMMember",
    "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember",
    "gcp:iap/brand:Brand", "gcp:iap/client:Client",
    # The load balancer's parts other than its forwarding rules carry no charge of their own
    # (cloud.google.com/vpc/network-pricing: rules and data processed are what is billed).
    "gcp:compute/backendService:BackendService", "gcp:compute/uRLMap:URLMap",
    "gcp:compute/targetHttpsProxy:TargetHttpsProxy", "gcp:compute/targetHttpProxy:TargetHttpProxy",
    "gcp:compute/managedSslCertificate:ManagedSslCertificate",
    "gcp:compute/globalNetworkEndpointGroup:GlobalNetworkEndpointGroup",
    "gcp:compute/healthCheck:HealthCheck", "gcp:compute/securityPolicy:SecurityPolicy",
    # A global address in use by a forwarding rule is not billed (prices.yaml staticIp);
    # internal ranges (private services access) never are.
    "gcp:compute/globalAddress:GlobalAddress",
    # AWS
    "aws:iam/role:Role", "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policy:Policy",
    "aws:iam/openIdConnectProvider:OpenIdConnectProvider",
    "aws:ec2/vpc:Vpc", "aws:ec2/subnet:Subnet", "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/route:Route", "aws:ec2/routeTable:RouteTable",
    "aws:ec2/routeTableAssociation:RouteTableAssociation", "aws:ec2/securityGroup:SecurityGroup",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:eks/accessEntry:AccessEntry", "aws:eks/addon:Addon",
    "aws:eks/podIdentityAssociation:PodIdentityAssociation",
    "aws:efs/accessPoint:AccessPoint", "aws:efs/mountTarget:MountTarget",
    "aws:kms/alias:Alias", "aws:lambda/permission:Permission",
    "aws:sqs/queuePolicy:QueuePolicy", "aws:sqs/redriveAllowPolicy:RedriveAllowPolicy",
    "aws:sqs/redrivePolicy:RedrivePolicy", "aws:sns/topicSubscription:TopicSubscription",
    "aws:apigateway/apiKey:ApiKey", "aws:apigateway/deployment:Deployment",
    "aws:apigateway/integration:Integration", "aws:apigateway/method:Method",
    "aws:apigateway/resource:Resource", "aws:apigateway/restApi:RestApi",
    "aws:apigateway/stage:Stage", "aws:apigateway/usagePlanKey:UsagePlanKey",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:cloudwatch/eventTarget:EventTarget",
    # Rules matching AWS service events are free (aws.amazon.com/eventbridge/pricing).
    "aws:cloudwatch/eventRule:EventRule",
}
# Billed only by use (storage held, requests made, builds run): listed, not estimated.
USAGE_BILLED = {
    "gcp:storage/bucket:Bucket": "Cloud Storage: per GB stored and per operation",
    "gcp:storage/bucketObject:BucketObject": "Cloud Storage: per GB stored and per operation",
    "gcp:artifactregistry/repository:Repository": "Artifact Registry: per GB of images over 0.5 GB",
    "gcp:cloudbuild/trigger:Trigger": "Cloud Build: per build-minute, when images are built",
    "gcp:secretmanager/secret:Secret": "Secret Manager: per active version and per access",
    "gcp:secretmanager/secretVersion:SecretVersion": "Secret Manager: per active version and per access",
    "aws:s3/bucket:Bucket": "S3: per GB stored and per request",
    "aws:sns/topic:Topic": "SNS: per publish (at the API quota, under the API line)",
    "aws:cloudwatch/logGroup:LogGroup": "CloudWatch Logs: per GB ingested and stored",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "VPC endpoints: Gateway type free, Interface type per AZ-hour",
}
# Kubernetes objects that make cloud resources are priced where they are read: an Ingress or a
# LoadBalancer Service (forwarding rules, `_ingress_rules`), a claim that provisions a disk
# (`_classify`).


# --- GCP --------------------------------------------------------------------------------------------

def _zones(pool: Any, clusters: list) -> int:
    locations = read(pool, "nodeLocations") or next(
        (read(c.inputs, "nodeLocations") for c in clusters if read(c.inputs, "nodeLocations")), None)
    if locations:
        return len(locations)
    location = read(pool, "location", default="")
    return 1 if location.count("-") >= 2 else GKE_DEFAULT_ZONES_PER_REGION  # zonal: us-central1-a


@dataclass
class NodePool:
    name: str
    machine_type: str
    labels: dict
    min_nodes: int
    max_nodes: int
    spot: bool
    gpus: int                    # per node
    pods_per_gpu: int            # GPU time-sharing clients
    node_hour: Optional[float]   # None: not priced (listed in missing)
    shape: str


def _node_pools(plan: Plan, prices: dict, sheet: Sheet) -> list[NodePool]:
    clusters = plan.of("gcp:container/cluster:Cluster")
    pools = []
    for r in plan.of("gcp:container/nodePool:NodePool"):
        p, nc = r.inputs, read(r.inputs, "nodeConfig", default={})
        machine = read(nc, "machineType", default="e2-medium")
        disk_type = read(nc, "diskType", default=GKE_DEFAULT_DISK_TYPE)
        disk_gb = number(read(nc, "diskSizeGb")) or GKE_DEFAULT_DISK_GB
        accelerators = read(nc, "guestAccelerators", default=[])
        gpus = int(sum(number(read(a, "count")) or 0 for a in accelerators))
        accelerator = read(accelerators, 0, "type")
        sharing = int(number(read(accelerators, 0, "gpuSharingConfig", "maxSharedClientsPerGpu")) or 1)
        zones = _zones(p, clusters)
        scaling = read(p, "autoscaling")
        if scaling is not None:
            low = number(read(scaling, "totalMinNodeCount"))
            low = low if low is not None else (number(read(scaling, "minNodeCount")) or 0) * zones
            high = number(read(scaling, "totalMaxNodeCount"))
            high = high if high is not None else (number(read(scaling, "maxNodeCount")) or 0) * zones
        else:
            fixed = number(read(p, "nodeCount", default=read(p, "initialNodeCount"))) or 1
            low = high = fixed * zones
        machine_price = sheet.lookup(prices["machineTypes"], machine, f"gcp machine type {machine}")
        disk_price = sheet.lookup(prices["disks"], disk_type, f"gcp disk type {disk_type}")
        node_hour = None
        included = bool(machine_price and machine_price.get("gpusIncluded"))
        if machine_price is not None and disk_price is not None:
            node_hour = machine_price["perHour"] + disk_price["perGbMonth"] * disk_gb / sheet.hours
            if accelerator and gpus and not included:
                gpu = sheet.lookup(prices["accelerators"], accelerator, f"gcp accelerator {accelerator}")
                node_hour = None if gpu is None else node_hour + gpu["perGpuHour"] * gpus
        if not gpus and (included or machine.split("-")[0] in ("a2", "a3", "g2")):
            gpus = 1  # accelerator-optimized types come with their GPU attached
        pools.append(NodePool(
            name=read(p, "name", default=r.name), machine_type=machine,
            labels=read(nc, "labels", default={}), min_nodes=int(low), max_nodes=int(high),
            spot=bool(read(nc, "spot") or read(nc, "preemptible")), gpus=gpus, pods_per_gpu=sharing,
            node_hour=node_hour,
            shape=machine if included or not accelerator else f"{machine} + {gpus} x {accelerator}"))
    return pools


def _pod_spec_gpus(pod_spec: Any) -> int:
    return int(sum(number(read(c, "resources", "limits", GPU)) or 0
                   for c in read(pod_spec, "containers", default=[])))


def _pool_for(pod_spec: Any, pools: list[NodePool]) -> Optional[NodePool]:
    """The node pool whose labels satisfy the pod's nodeSelector (GPU pools only)."""
    selector = read(pod_spec, "nodeSelector", default={})
    gpu_pools = [p for p in pools if p.gpus]
    matching = [p for p in gpu_pools if all(p.labels.get(k) == v for k, v in selector.items())]
    return matching[0] if len(matching) == 1 else None


@dataclass
class Demand:
    """GPU pods a pool keeps warm: off-peak, during peak windows, and placeholders all month."""
    buffer: int = 0
    peaks: list[tuple[int, str, str, str]] = field(default_factory=list)  # pods, cron, duration, tz
    placeholders: int = 0
    fleet: bool = False


def _buffer_of(policy: Any) -> tuple[Optional[int], Optional[int]]:
    """(bufferSize, minReplicas) of a Buffer policy; bufferSize as a percentage is not counted."""
    size = number(read(policy, "buffer", "bufferSize"))
    return (None if size is None else int(size)), int(number(read(policy, "buffer", "minReplicas")) or 0)


def _demands(plan: Plan, pools: list[NodePool], sheet: Sheet) -> dict[str, Demand]:
    demands: dict[str, Demand] = defaultdict(Demand)
    fleets = {(read(f.inputs, "metadata", "namespace"), read(f.inputs, "metadata", "name")): f
              for f in plan.of("kubernetes:agones.dev/v1:Fleet")}
    scaled = set()
    for fa in plan.of("kubernetes:autoscaling.agones.dev/v1:FleetAutoscaler"):
        key = (read(fa.inputs, "metadata", "namespace"), read(fa.inputs, "spec", "fleetName"))
        fleet = fleets.get(key)
        if fleet is None:
            sheet.miss(f"FleetAutoscaler {fa.name}: its fleet {key[1]} is not in the plan")
            continue
        scaled.add(key)
        pool = _pool_for(read(fleet.inputs, "spec", "template", "spec", "template", "spec"), pools)
        if pool is None:
            sheet.miss(f"Fleet {fleet.name}: no single GPU node pool matches its nodeSelector")
            continue
        demand = demands[pool.name]
        demand.fleet = True
        policy = read(fa.inputs, "spec", "policy", default={})
        chain = read(policy, "chain", default=[]) if read(policy, "type") == "Chain" else [policy]
        for entry in chain:
            if read(entry, "type") == "Schedule":
                inner = read(entry, "schedule", "policy", default={})
                size, low = _buffer_of(inner)
                period = read(entry, "schedule", "activePeriod", default={})
                cron, duration = read(period, "startCron"), read(period, "duration")
                if size is None or not cron or not duration:
                    sheet.miss(f"FleetAutoscaler {fa.name} schedule {read(entry, 'id')}: "
                               "buffer or active period not a fixed number and window")
                    continue
                demand.peaks.append((max(size, low), cron, duration, read(period, "timezone", default="UTC")))
            elif read(entry, "type", default="Buffer") == "Buffer":
                size, low = _buffer_of(entry)
                if size is None:
                    sheet.miss(f"FleetAutoscaler {fa.name}: bufferSize is not a fixed number")
                    continue
                demand.buffer = max(size, low)
    for key, fleet in fleets.items():
        if key not in scaled:  # a fleet without an autoscaler keeps its replicas
            pool = _pool_for(read(fleet.inputs, "spec", "template", "spec", "template", "spec"), pools)
            if pool is not None:
                demands[pool.name].fleet = True
                demands[pool.name].buffer += int(number(read(fleet.inputs, "spec", "replicas")) or 0)
    for d in plan.of("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet"):
        pod = read(d.inputs, "spec", "template", "spec")
        if not _pod_spec_gpus(pod):
            continue
        pool = _pool_for(pod, pools)
        if pool is None:
            sheet.miss(f"{d.name}: GPU pods with no single GPU node pool matching their nodeSelector")
            continue
        demands[pool.name].placeholders += int(number(read(d.inputs, "spec", "replicas", default=1)) or 0)
    return demands


def _gpu_pools(pools: list[NodePool], demands: dict[str, Demand], sheet: Sheet) -> tuple[Optional[float], float]:
    """Warm GPU capacity lines; returns (one person-hour of GPU, standing GPU nodes)."""
    h, gpu_hour, standing = sheet.hours, None, 0.0
    for pool in pools:
        if not pool.gpus:
            continue
        demand = demands.get(pool.name, Demand())
        spot = "; Spot priced at on-demand (upper bound)" if pool.spot else ""
        per_node = pool.gpus * pool.pods_per_gpu

        def nodes(pods: int, per_node: int = per_node, top: int = pool.max_nodes) -> int:
            return min(top, math.ceil(pods / per_node))

        if not demand.fleet and not demand.placeholders:
            standing += pool.min_nodes
            if pool.min_nodes and pool.node_hour is not None:
                sheet.add(f"GPU pool {pool.name}: minimum {pool.min_nodes} x {pool.shape}",
                          pool.node_hour * pool.min_nodes * h, "all month" + spot)
            continue
        off_nodes = nodes(demand.buffer)
        peak_hours, peak_lines = 0.0, []
        for pods, cron, duration, tz in demand.peaks:
            try:
                hours = min(h, window_hours_per_week(cron, duration) * WEEKS_PER_MONTH)
            except ValueError as exc:
                sheet.miss(f"peak window '{cron}' for {duration}: {exc}")
                continue
            peak_hours = min(h, peak_hours + hours)
            peak_lines.append((pods, cron, duration, tz, hours))
        placeholder_nodes = nodes(demand.placeholders) if demand.placeholders else 0
        floor_nodes = max(0, pool.min_nodes - off_nodes - placeholder_nodes)
        standing += off_nodes + placeholder_nodes + floor_nodes
        if pool.node_hour is None:
            continue
        if demand.fleet:
            gpu_hour = gpu_hour if gpu_hour is not None else pool.node_hour / per_node
            sheet.add(f"warm GPU buffer: {off_nodes} x {pool.shape}",
                      pool.node_hour * off_nodes * (h - peak_hours),
                      f"{demand.buffer} Ready pod(s), {h - peak_hours:.0f} h/month"
                      + (" outside peak hours" if peak_lines else "") + spot)
            for pods, cron, duration, tz, hours in peak_lines:
                sheet.add(f"warm GPU buffer, peak hours: {nodes(pods)} x {pool.shape}",
                          pool.node_hour * nodes(pods) * hours,
                          f"{pods} Ready pod(s), {hours / WEEKS_PER_MONTH:.0f} h/week "
                          f"('{cron}' for {duration}, {tz})" + spot)
        sheet.add(f"placeholders: {placeholder_nodes} x {pool.shape}",
                  pool.node_hour * placeholder_nodes * h,
                  (f"{demand.placeholders} low-priority pod(s), all month" if demand.placeholders
                   else "none configured") + spot)
        if floor_nodes:
            sheet.add(f"GPU pool {pool.name} minimum: {floor_nodes} more x {pool.shape}",
                      pool.node_hour * floor_nodes * h, f"minimum {pool.min_nodes} nodes, all month" + spot)
    return gpu_hour, standing


def _ingress_rules(plan: Plan) -> tuple[int, list[str]]:
    """Forwarding rules the load balancers of the plan make, and what made them."""
    rules, what = 0, []
    for r in plan.of("gcp:compute/globalForwardingRule:GlobalForwardingRule",
                     "gcp:compute/forwardingRule:ForwardingRule"):
        if str(read(r.inputs, "loadBalancingScheme", default="EXTERNAL")).startswith("EXTERNAL"):
            rules += 1
            what.append(read(r.inputs, "name", default=r.name))
    for r in plan.of("kubernetes:networking.k8s.io/v1:Ingress"):
        notes = read(r.inputs, "metadata", "annotations", default={})
        cls = read(r.inputs, "spec", "ingressClassName", default=notes.get("kubernetes.io/ingress.class", "gce"))
        if cls != "gce":
            continue
        # GKE's Ingress controller makes an HTTP rule unless kubernetes.io/ingress.allow-http is
        # "false", and an HTTPS rule when the Ingress has certificates (GKE docs, "HTTPS between
        # client and load balancer": ingress-xlb, allow-http; managed-certificates).
        http = notes.get("kubernetes.io/ingress.allow-http", "true") != "false"
        https = bool(read(r.inputs, "spec", "tls") or notes.get("networking.gke.io/managed-certificates")
                     or notes.get("ingress.gcp.kubernetes.io/pre-shared-cert"))
        rules += int(http) + int(https)
        what.append(f"Ingress {r.name} ({'HTTP+HTTPS' if http and https else 'HTTPS' if https else 'HTTP'})")
    for r in plan.of("kubernetes:core/v1:Service"):
        if read(r.inputs, "spec", "type") == "LoadBalancer":
            rules += 1
            what.append(f"Service {r.name} (LoadBalancer)")
    return rules, what


def _functions(plan: Plan, prices: dict, sheet: Sheet) -> None:
    fn, h = prices["functions"], sheet.hours
    jobs = plan.of("gcp:cloudscheduler/job:Job")
    for r in plan.of("gcp:cloudfunctionsv2/function:Function"):
        name = read(r.inputs, "name", default=r.name)
        service = read(r.inputs, "serviceConfig", default={})
        mib = memory_mib(read(service, "availableMemory")) or FUNCTION_DEFAULT_MEMORY_MIB
        cpu = number(read(service, "availableCpu"))
        if cpu is None:
            cpu = next((v for m, v in FUNCTION_DEFAULT_VCPU_BY_MIB if mib <= m), None)
        if cpu is None:
            sheet.miss(f"function {name}: {mib:g} MiB has no default CPU")
            continue
        gib = mib / 1024
        warm = int(number(read(service, "minInstanceCount")) or 0)
        idle = warm * h * 3600 * (cpu * fn["idlePerVcpuSecond"] + gib * fn["idlePerGibSecond"])
        runs, schedules = 0.0, []
        for job in jobs:
            uri = str(read(job.inputs, "httpTarget", "uri", default=""))
            if re.search(rf"/{re.escape(name)}(/|$)", uri):
                schedule = read(job.inputs, "schedule", default="")
                try:
                    runs += runs_per_month(schedule)
                    schedules.append(schedule)
                except ValueError as exc:
                    sheet.miss(f"scheduler job {job.name} '{schedule}': {exc}")
        active = runs * SECONDS_PER_SCHEDULED_RUN * (cpu * fn["perVcpuSecond"] + gib * fn["perGibSecond"])
        requests = runs / 1e6 * fn["perMillionRequests"]
        notes = [f"{mib:g} MiB, {cpu:g} vCPU"]
        if warm:
            notes.append(f"{warm} warm instance(s) all month")
        if runs:
            notes.append(f"{runs:,.0f} scheduled runs ({', '.join(schedules)}) x "
                         f"{SECONDS_PER_SCHEDULED_RUN:g} s assumed")
        notes.append("requests from people add little; before free tier")
        sheet.add(f"Cloud Function {name}", idle + active + requests, "; ".join(notes))
    for r in plan.of("gcp:vpcaccess/connector:Connector"):
        machine = read(r.inputs, "machineType", default="e2-micro")
        count = int(number(read(r.inputs, "minInstances")) or 2)  # the API's minimum is 2
        price = sheet.lookup(prices["machineTypes"], machine, f"gcp machine type {machine}")
        if price is not None:
            sheet.add(f"VPC connector {read(r.inputs, 'name', default=r.name)}: {count} x {machine}",
                      price["perHour"] * count * h, "minimum instances, all month")
    if jobs:
        sheet.add(f"Cloud Scheduler: {len(jobs)} job(s)", prices["scheduler"]["perJobMonth"] * len(jobs),
                  "before the 3 free jobs per billing account")


def _gcp(plan: Plan, region: str, table: dict, sheet: Sheet) -> Optional[float]:
    prices = table.get("gcp", {}).get(region)
    if prices is None:
        sheet.miss(f"gcp region {region} (the table prices {', '.join(table.get('gcp', {}))})")
        return None
    h = sheet.hours
    clusters = plan.of("gcp:container/cluster:Cluster")
    if clusters:
        sheet.add(f"GKE cluster management fee: {len(clusters)} cluster(s)",
                  prices["gke"]["clusterManagementPerHour"] * len(clusters) * h, "Standard clusters")

    pools = _node_pools(plan, prices, sheet)
    standing = 0.0
    for pool in pools:
        if pool.gpus:
            continue
        standing += pool.min_nodes
        if pool.node_hour is not None:
            sheet.add(f"node pool {pool.name}: {pool.min_nodes} x {pool.machine_type}, all month",
                      pool.node_hour * pool.min_nodes * h,
                      f"autoscaling may add up to {pool.max_nodes - pool.min_nodes} more"
                      + ("; Spot priced at on-demand (upper bound)" if pool.spot else ""))
    gpu_hour, gpu_nodes = _gpu_pools(pools, _demands(plan, pools, sheet), sheet)
    standing += gpu_nodes

    for r in plan.of("gcp:filestore/instance:Instance"):
        tier = read(r.inputs, "tier")
        gib = number(read(r.inputs, "fileShares", "capacityGb")) or 0
        price = sheet.lookup(prices["filestore"], tier, f"gcp Filestore tier {tier}")
        if price is not None:
            sheet.add(f"Filestore {tier}, {gib:g} GiB", price["perGibMonth"] * gib,
                      f"{read(r.inputs, 'name', default=r.name)}: models and people's folders")
    for r in plan.of("gcp:redis/instance:Instance"):
        tier, gb = read(r.inputs, "tier", default="BASIC"), number(read(r.inputs, "memorySizeGb")) or 0
        bracket = next((b for b in prices["memorystore"].get(tier, []) if gb <= b["maxGb"]), None)
        if bracket is None:
            sheet.miss(f"gcp Memorystore {tier} {gb:g} GB")
        else:
            sheet.add(f"Memorystore Redis {tier}, {gb:g} GB", bracket["perGbHour"] * gb * h,
                      read(r.inputs, "name", default=r.name))

    nat = prices["nat"]
    for r in plan.of("gcp:compute/routerNat:RouterNat"):
        manual = read(r.inputs, "natIpAllocateOption") == "MANUAL_ONLY"
        ips = len(read(r.inputs, "natIps", default=[])) if manual else 1  # AUTO_ONLY starts with one
        sheet.add(f"Cloud NAT gateway {read(r.inputs, 'name', default=r.name)}",
                  (min(standing * nat["perVmHour"], nat["maxPerGatewayHour"]) + ips * nat["perIpHour"]) * h,
                  f"{standing:g} standing node(s) and {ips} IP; plus {nat['perGbProcessed']} USD/GB "
                  "processed (image and model downloads), not estimated")

    rules, what = _ingress_rules(plan)
    if rules:
        lb = prices["loadBalancer"]
        hourly = lb["firstFiveRulesPerHour"] + max(0, rules - 5) * lb["additionalRulePerHour"]
        sheet.add(f"HTTPS load balancer: {rules} forwarding rule(s)", hourly * h,
                  f"{', '.join(what)}; plus {lb['perGbProcessed']} USD/GB processed, not estimated")
    _functions(plan, prices, sheet)
    return gpu_hour


# --- AWS --------------------------------------------------------------------------------------------

def _karpenter_gpu_hour(plan: Plan, prices: dict, sheet: Sheet) -> Optional[tuple[str, float]]:
    """The cheapest GPU-hour a Karpenter NodePool may launch (instance families or types it allows)."""
    cheapest = None
    for r in plan.of("kubernetes:karpenter.sh/v1:NodePool"):
        for req in read(r.inputs, "spec", "template", "spec", "requirements", default=[]):
            key, values = read(req, "key"), read(req, "values", default=[])
            if read(req, "operator") != "In" or key not in ("karpenter.k8s.aws/instance-family",
                                                              "node.kubernetes.io/instance-type"):
                continue
            for value in values:
                found = [(t, p) for t, p in prices["instanceTypes"].items() if p.get("gpus")
                         and (t == value or t.split(".")[0] == value)]
                if not found:
                    sheet.miss(f"aws instance {'family' if 'family' in key else 'type'} {value}")
                for typ, price in found:
                    per_gpu = price["perHour"] / price["gpus"]
                    if cheapest is None or per_gpu < cheapest[1]:
                        cheapest = (typ, per_gpu)
    return cheapest


def _aws(plan: Plan, region: str, table: dict, sheet: Sheet) -> Optional[float]:
    prices = table.get("aws", {}).get(region)
    if prices is None:
        sheet.miss(f"aws region {region} (the table prices {', '.join(table.get('aws', {}))})")
        return None
    h = sheet.hours
    for r in plan.of("aws:eks/cluster:Cluster"):
        support = read(r.inputs, "upgradePolicy", "supportType", default="STANDARD")
        key = "clusterPerHour" if support == "STANDARD" else "clusterExtendedSupportPerHour"
        price = sheet.lookup(prices["eks"], key, f"aws EKS {support} support")
        if price is not None:
            sheet.add(f"EKS control plane {read(r.inputs, 'name', default=r.name)}", price * h,
                      f"{support.lower()} Kubernetes version support")
    for r in plan.of("aws:eks/nodeGroup:NodeGroup"):
        types = read(r.inputs, "instanceTypes", default=["t3.medium"])
        count = int(number(read(r.inputs, "scalingConfig", "desiredSize"))
                    or number(read(r.inputs, "scalingConfig", "minSize")) or 0)
        disk = number(read(r.inputs, "diskSize")) or EKS_NODE_GROUP_DEFAULT_DISK_GB
        price = sheet.lookup(prices["instanceTypes"], types[0], f"aws instance type {types[0]}")
        if price is not None:
            sheet.add(f"node group {r.name}: {count} x {types[0]}, all month",
                      (price["perHour"] * h + prices["ebs"]["gp3PerGbMonth"] * disk) * count,
                      f"desired size; {disk:g} GB root volume each (gp3 rate)"
                      + ("; Spot priced at on-demand" if read(r.inputs, "capacityType") == "SPOT" else ""))
    gateways, eips = plan.of("aws:ec2/natGateway:NatGateway"), plan.of("aws:ec2/eip:Eip")
    if gateways:
        nat = prices["nat"]
        sheet.add(f"NAT gateways: {len(gateways)}", nat["perGatewayHour"] * len(gateways) * h,
                  f"plus {nat['perGbProcessed']} USD/GB processed, not estimated")
    if eips:
        sheet.add(f"public IPv4 addresses: {len(eips)}", prices["publicIpv4PerHour"] * len(eips) * h,
                  "Elastic IPs (the NAT gateways')")
    for r in plan.of("aws:efs/fileSystem:FileSystem"):
        sheet.add(f"EFS {r.name}", prices["efs"]["standardPerGbMonth"] * MODEL_STORE_GB,
                  f"{MODEL_STORE_GB} GB of models assumed (Standard storage)")
    keys = plan.of("aws:kms/key:Key")
    if keys:
        sheet.add(f"KMS keys: {len(keys)}", prices["kms"]["perKeyMonth"] * len(keys),
                  "customer managed keys; each yearly rotation adds to this (first two only)")

    lam = prices["lambda"]
    lambdas = plan.of("aws:lambda/function:Function")
    for plan_r in plan.of("aws:apigateway/usagePlan:UsagePlan"):
        limit = number(read(plan_r.inputs, "quotaSettings", "limit"))
        period = read(plan_r.inputs, "quotaSettings", "period", default="DAY")
        per_month = {"DAY": DAYS_PER_MONTH, "WEEK": WEEKS_PER_MONTH, "MONTH": 1}.get(period)
        if limit is None or per_month is None:
            sheet.miss(f"API usage plan {plan_r.name}: no fixed quota to estimate requests from")
            continue
        jobs = limit * per_month
        gb = sum(number(read(f.inputs, "memorySize")) or LAMBDA_DEFAULT_MEMORY_MB for f in lambdas) / 1024
        sheet.add(f"API Gateway + Lambda + SNS at the {period.lower()} quota",
                  jobs / 1e6 * (prices["apiGateway"]["restPerMillionRequests"]
                                + lam["perMillionRequests"] * len(lambdas)
                                + prices["sns"]["perMillionPublishes"] * SNS_PUBLISHES_PER_JOB)
                  + jobs * gb * LAMBDA_SECONDS_PER_JOB * lam["perGbSecond"],
                  f"upper bound: {limit:,.0f} jobs per {period.lower()} (usage plan quota); "
                  f"{LAMBDA_SECONDS_PER_JOB:g} s per invocation assumed")

    polls, scalers = 0.0, []
    for r in plan.of("kubernetes:keda.sh/v1alpha1:ScaledObject", "kubernetes:keda.sh/v1alpha1:ScaledJob"):
        queues = [t for t in read(r.inputs, "spec", "triggers", default=[]) if read(t, "type") == "aws-sqs-queue"]
        interval = number(read(r.inputs, "spec", "pollingInterval")) or KEDA_DEFAULT_POLLING_SECONDS
        polls += len(queues) * h * 3600 / interval
        scalers.append(f"{read(r.inputs, 'metadata', 'name', default=r.name)} every {interval:g} s")
    queues = plan.of("aws:sqs/queue:Queue")
    if queues:
        sheet.add(f"SQS: {len(queues)} queue(s)", polls / 1e6 * prices["sqs"]["standardPerMillionRequests"],
                  (f"KEDA polls: {', '.join(scalers)}" if scalers else "no pollers in the plan")
                  + "; job messages add little")

    cheapest = _karpenter_gpu_hour(plan, prices, sheet)
    if plan.of("kubernetes:karpenter.sh/v1:NodePool"):
        sheet.add("GPU nodes (Karpenter, scale from zero)", 0.0,
                  "no warm GPU capacity; each job pays GPU time"
                  + (f" from {cheapest[1]:.2f} USD/h ({cheapest[0]}, on-demand)" if cheapest else ""))
    return cheapest[1] if cheapest else None


# --- Estimate ---------------------------------------------------------------------------------------


def _classify(plan: Plan, sheet: Sheet) -> None:
    """Every resource type is priced, free of its own, or billed by use; anything else is missing."""
    for type_, found in sorted(plan.by_type.items()):
        if type_ in PRICED or type_ in NO_CHARGE:
            continue
        if type_ in USAGE_BILLED:
            if USAGE_BILLED[type_] not in sheet.usage_billed:
                sheet.usage_billed.append(USAGE_BILLED[type_])
        elif type_.startswith(NO_CHARGE_PREFIXES):
            if type_ == "kubernetes:core/v1:PersistentVolumeClaim":
                for r in found:  # a claim bound to a named volume (Filestore) provisions nothing
                    if not read(r.inputs, "spec", "volumeName") and read(r.inputs, "spec", "storageClassName") != "":
                        sheet.miss(f"PersistentVolumeClaim {r.name}: dynamically provisioned disk")
        else:
            sheet.miss(f"resource type {type_} ({len(found)}): not known to tools/cost.py")


def estimate(plan, stack_config, prices: Optional[dict] = None) -> dict:
    """{"lines", "totalMonthlyUsd", "gpuHourUsd", "missing", "usageBilled", "priceTable"} for the
    resources a plan (tools.preview.PlanResult) registers; `stack_config` gives cloud and region."""
    table = prices if prices is not None else price_table()
    sheet = Sheet(table.get("hoursPerMonth", 730))
    view = Plan(list(plan.resources))
    _classify(view, sheet)
    if stack_config.platform.cloud == "gcp":
        gpu_hour = _gcp(view, stack_config.gcp_region or "us-central1", table, sheet)
    else:
        gpu_hour = _aws(view, stack_config.aws_region or "us-east-1", table, sheet)
    return {
        "lines": sheet.lines,
        "totalMonthlyUsd": round(sum(line["monthlyUsd"] for line in sheet.lines), 2),
        "gpuHourUsd": round(gpu_hour, 4) if gpu_hour is not None else None,
        "missing": sheet.missing,
        "usageBilled": sheet.usage_billed,
        "priceTable": {"version": table.get("version"),
                       "transcribed": (table.get("sources") or {}).get("transcribed")},
    }

