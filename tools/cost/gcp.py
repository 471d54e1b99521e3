"""GCP: the interactive platform's standing costs, from the resources its plan registers."""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from components.k8s.pods import CAPACITY_LABEL
from components.registries.accelerators import brings_its_gpus

from .assumptions import (
    FUNCTION_DEFAULT_MEMORY_MIB,
    FUNCTION_DEFAULT_VCPU_BY_MIB,
    GKE_DEFAULT_DISK_GB,
    GKE_DEFAULT_DISK_TYPE,
    GKE_DEFAULT_ZONES_PER_REGION,
    GPU,
    SECONDS_PER_SCHEDULED_RUN,
    WEEKS_PER_MONTH,
)
from .cron import runs_per_month, window_hours_per_week
from .sheet import Plan, Sheet, memory_mib, number, read


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
        if not gpus and (included or brings_its_gpus(machine)):
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
    # A Spot pool and its on-demand fallback both match: the Spot pool is the one tried first.
    if len(matching) > 1:
        matching = [p for p in matching if p.labels.get(CAPACITY_LABEL) != "on-demand"]
    return matching[0] if len(matching) == 1 else None


@dataclass
class Demand:
    """GPU pods a pool keeps warm: off-peak, during peak windows, and placeholders all month."""
    buffer: int = 0
    peaks: list[tuple[int, str, str, str]] = field(default_factory=list)  # pods, cron, duration, tz
    placeholders: int = 0
    fleet: bool = False
    profiles: list[str] = field(default_factory=list)  # the profiles (fleets) on the pool


def _buffer_of(policy: Any) -> tuple[Optional[int], Optional[int]]:
    """(bufferSize, minReplicas) of a Buffer policy; bufferSize as a percentage is not counted."""
    size = number(read(policy, "buffer", "bufferSize"))
    return (None if size is None else int(size)), int(number(read(policy, "buffer", "minReplicas")) or 0)


def _profile_of(fleet) -> str:
    """A fleet's profile: its `sdfleet.dev/profile` label, else (a platform without profiles)
    the fleet's name."""
    label = read(fleet.inputs, "metadata", "labels", "sdfleet.dev/profile")
    return str(label) if label else "fleet " + str(read(fleet.inputs, "metadata", "name", default=fleet.name))


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
        demand.profiles.append(_profile_of(fleet))
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
                demand.buffer += max(size, low)
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


def _gpu_pools(pools: list[NodePool], demands: dict[str, Demand], sheet: Sheet,
               profile_hours: Optional[dict[str, float]] = None) -> tuple[Optional[float], float]:
    """Warm GPU capacity lines; returns (one person-hour of GPU, standing GPU nodes) and
    fills `profile_hours` with one person-hour of each profile."""
    h, gpu_hour, standing = sheet.hours, None, 0.0
    profile_hours = profile_hours if profile_hours is not None else {}
    for pool in pools:
        if not pool.gpus:
            continue
        demand = demands.get(pool.name, Demand())
        spot = "; Spot priced at on-demand (upper bound)" if pool.spot else ""
        if pool.spot and pool.labels.get(CAPACITY_LABEL) == "spot":
            spot += "; on-demand when no Spot VM can be had, at that price"
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
            for profile in demand.profiles:
                profile_hours[profile] = pool.node_hour / per_node
            labelled = [p for p in demand.profiles if not p.startswith("fleet ")]
            named = f" ({', '.join(labelled)})" if labelled else ""
            sheet.add(f"warm GPU buffer{named}: {off_nodes} x {pool.shape}",
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
            # The cloudfunctions.net path, or the Cloud Run service host (name-number.region.run.app).
            # The URL names the function, or (unknown in a preview) the job depends on it.
            calls = re.search(rf"(/{re.escape(name)}(/|$))|(^https://{re.escape(name)}-[0-9]+"
                              rf"\.[a-z0-9-]+\.run\.app(/|$))", uri)
            if calls or r.urn in (getattr(job, "dependencies", None) or []):
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


def standing_costs(plan: Plan, region: str, table: dict, sheet: Sheet) -> Optional[float]:
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
    if any(read(r.inputs, "nodeConfig", "secondaryBootDisks") for r in plan.of("gcp:container/nodePool:NodePool")):
        sheet.usage_billed.append("Compute Engine: the preloaded disk images (per GB stored) and each GPU "
                                  "node's secondary boot disk (per GB-month while the node runs)")
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
    gpu_hour, gpu_nodes = _gpu_pools(pools, _demands(plan, pools, sheet), sheet,
                                     sheet.profile_hours)
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
