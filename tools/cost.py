"""Monthly cost estimate of a stack, from its validated config and tools/prices.yaml.

`make plan` prints it (tools/plan.py). One line per thing that costs money whether or not
anyone uses the platform (system nodes all month, the warm GPU buffer and placeholders with
their peak hours, shared storage, cache, NAT, load balancer, functions, scheduler; for AWS:
control plane, system nodes, NAT, EFS, API, queues), plus the price of one person-hour of GPU,
which is what each active person adds on top.

Rules:
- prices come only from the price table; a machine type, accelerator, tier or region missing
  there is listed in `missing` and left out of the total, never guessed;
- usage that the config does not say (how long a culler pass takes, how many GB of models)
  is a named constant below, and each line's note says what it assumed;
- Spot pools are priced at on-demand rates (an upper bound; the table lists no Spot prices).

Mirrors what the program builds: keep the constants in step with components/ when those change.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Optional

PRICES_PATH = Path(__file__).with_name("prices.yaml")

# --- What the program builds (components/gcp/functions.py, components/aws/...) -------------------
CONNECTOR_MIN_INSTANCES = 2          # Serverless VPC Access connector, e2-micro instances
CONNECTOR_MACHINE_TYPE = "e2-micro"
FUNCTION_MEMORY_GIB = 0.5            # available_memory="512M"
FUNCTION_VCPU = 1 / 3                # what Cloud Functions gen2 allots to 512M
ALLOCATOR_MIN_INSTANCES = 1          # kept warm so a first sign-in does not wait for a cold start
SCHEDULER_JOBS = 1                   # the culler
LOAD_BALANCERS = 1                   # the IAP load balancer (2 rules: 443, 80 redirect)
NAT_IPS = 1                          # AUTO_ONLY starts with one address
AWS_NODE_DISK_GB = 20                # EKS managed node group default root volume (gp3)

# --- Usage the config does not say (each line's note repeats what it assumed) ---------------------
CULLER_SECONDS_PER_RUN = 2.0
KEDA_POLLING_SECONDS = 30            # KEDA's default pollingInterval, one receive call per queue
MODEL_STORE_GB = 100                 # models on EFS for the AWS batch variant
SUBMIT_LAMBDA_GB = 0.25
SUBMIT_LAMBDA_SECONDS = 0.2

DAYS_PER_MONTH = 365 / 12
WEEKS_PER_MONTH = 365 / 12 / 7
REFERENCE_YEAR = 2025                # any non-leap year: only its calendar is used


@lru_cache(maxsize=1)
def price_table(path: str = str(PRICES_PATH)) -> dict:
    """The price table, read once per process."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=loader)


# --- Cron: how many hours a week the peak window covers, how often a job runs ---------------------

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


# --- Estimate ---------------------------------------------------------------------------------------

class _Sheet:
    def __init__(self, hours_per_month: float):
        self.hours = hours_per_month
        self.lines: list[dict] = []
        self.missing: list[str] = []

    def add(self, item: str, monthly: float, note: str = "") -> None:
        self.lines.append({"item": item, "monthlyUsd": round(monthly, 2), "note": note})

    def miss(self, what: str) -> None:
        if what not in self.missing:
            self.missing.append(what)


def _lookup(sheet: _Sheet, table: dict, key: str, what: str) -> Optional[Any]:
    if key in table:
        return table[key]
    sheet.miss(what)
    return None


def _gcp_node_hour(sheet: _Sheet, prices: dict, machine_type: str, disk_type: str, disk_gb: int,
                   accelerator: Optional[str] = None, accelerators: int = 0) -> Optional[float]:
    """On-demand price of one node-hour: machine + attached GPUs + its boot disk."""
    machine = _lookup(sheet, prices["machineTypes"], machine_type,
                      f"gcp machine type {machine_type}")
    disk = _lookup(sheet, prices["disks"], disk_type, f"gcp disk type {disk_type}")
    if machine is None or disk is None:
        return None
    hour = machine["perHour"] + disk["perGbMonth"] * disk_gb / sheet.hours
    if accelerator and accelerators and not machine.get("gpusIncluded"):
        gpu = _lookup(sheet, prices["accelerators"], accelerator, f"gcp accelerator {accelerator}")
        if gpu is None:
            return None
        hour += gpu["perGpuHour"] * accelerators
    return hour


def _gcp(stack, table: dict, sheet: _Sheet) -> Optional[float]:
    p = stack.platform
    region = stack.gcp_region or "us-central1"
    prices = table.get("gcp", {}).get(region)
    if prices is None:
        sheet.miss(f"gcp region {region} (the table prices {', '.join(table.get('gcp', {}))})")
        return None
    h = sheet.hours

    sheet.add("GKE cluster management fee", prices["gke"]["clusterManagementPerHour"] * h,
              "one regional Standard cluster")

    sp = p.system_pool
    system_hour = _gcp_node_hour(sheet, prices, sp.machine_type, sp.disk_type, sp.disk_size_gb)
    if system_hour is not None:
        sheet.add(f"system nodes: {sp.min_nodes} x {sp.machine_type}, all month",
                  system_hour * sp.min_nodes * h,
                  f"autoscaling may add up to {sp.max_nodes - sp.min_nodes} more"
                  + ("; Spot priced at on-demand (upper bound)" if sp.spot else ""))

    gpu_hour = None
    warm_gpu_nodes = 0.0
    fleet_pool = p.fleet_pool if p.gpu_pools else None
    for pool in p.gpu_pools:
        node_hour = _gcp_node_hour(sheet, prices, pool.machine_type, pool.disk_type,
                                   pool.disk_size_gb, pool.accelerator, pool.accelerator_count)
        spot = "; Spot priced at on-demand (upper bound)" if pool.spot else ""
        per_node = pool.accelerator_count * (pool.time_sharing_clients or 1)
        if pool is not fleet_pool:
            if pool.min_nodes:
                warm_gpu_nodes += pool.min_nodes
                if node_hour is not None:
                    sheet.add(f"GPU pool {pool.name}: minimum {pool.min_nodes} x {pool.machine_type}",
                              node_hour * pool.min_nodes * h, "all month" + spot)
            continue
        f = p.fleet
        gpus_included = prices["machineTypes"].get(pool.machine_type, {}).get("gpusIncluded")
        shape = pool.machine_type if gpus_included else \
            f"{pool.machine_type} + {pool.accelerator_count} x {pool.accelerator}"

        def nodes(pods: int) -> int:
            return min(pool.max_nodes, math.ceil(pods / per_node))

        off_nodes = nodes(max(f.buffer, f.min_replicas))
        peak_hours = 0.0
        if f.peak_hours is not None:
            peak_hours = min(h, window_hours_per_week(f.peak_hours.start_cron, f.peak_hours.duration)
                             * WEEKS_PER_MONTH)
        placeholder_nodes = nodes(f.placeholders) if f.placeholders else 0
        floor_nodes = max(0, pool.min_nodes - off_nodes - placeholder_nodes)
        warm_gpu_nodes += off_nodes + placeholder_nodes + floor_nodes
        if node_hour is None:
            continue
        gpu_hour = node_hour / per_node
        sheet.add(f"warm GPU buffer: {off_nodes} x {shape}", node_hour * off_nodes * (h - peak_hours),
                  f"{max(f.buffer, f.min_replicas)} Ready pod(s), {h - peak_hours:.0f} h/month"
                  + (" outside peak hours" if f.peak_hours else "") + spot)
        if f.peak_hours is not None:
            peak_nodes = nodes(max(f.peak_hours.buffer, f.min_replicas))
            sheet.add(f"warm GPU buffer, peak hours: {peak_nodes} x {shape}",
                      node_hour * peak_nodes * peak_hours,
                      f"{f.peak_hours.buffer} Ready pod(s), {peak_hours / WEEKS_PER_MONTH:.0f} h/week "
                      f"('{f.peak_hours.start_cron}' for {f.peak_hours.duration}, "
                      f"{f.peak_hours.timezone})" + spot)
        sheet.add(f"placeholders: {placeholder_nodes} x {shape}", node_hour * placeholder_nodes * h,
                  (f"{f.placeholders} low-priority pod(s), all month" if f.placeholders
                   else "none configured") + spot)
        if floor_nodes:
            sheet.add(f"GPU pool {pool.name} minimum: {floor_nodes} more x {shape}",
                      node_hour * floor_nodes * h, f"minNodes {pool.min_nodes}, all month" + spot)

    tier = _lookup(sheet, prices["filestore"], p.storage.tier, f"gcp Filestore tier {p.storage.tier}")
    if tier is not None:
        sheet.add(f"Filestore {p.storage.tier}, {p.storage.capacity_gb} GiB",
                  tier["perGibMonth"] * p.storage.capacity_gb, "models and people's folders")

    brackets = prices["memorystore"].get(p.cache.tier, [])
    bracket = next((b for b in brackets if p.cache.memory_size_gb <= b["maxGb"]), None)
    if bracket is None:
        sheet.miss(f"gcp Memorystore {p.cache.tier} {p.cache.memory_size_gb} GB")
    else:
        sheet.add(f"Memorystore Redis {p.cache.tier}, {p.cache.memory_size_gb} GB",
                  bracket["perGbHour"] * p.cache.memory_size_gb * h, "AUTH + TLS")

    nat = prices["nat"]
    vms = sp.min_nodes + warm_gpu_nodes
    sheet.add("Cloud NAT gateway", (min(vms * nat["perVmHour"], nat["maxPerGatewayHour"])
                                    + NAT_IPS * nat["perIpHour"]) * h,
              f"{vms:g} node(s) and {NAT_IPS} IP; plus {nat['perGbProcessed']} USD/GB processed "
              "(image and model downloads), not estimated")

    lb = prices["loadBalancer"]
    sheet.add("HTTPS load balancer (IAP)", lb["firstFiveRulesPerHour"] * LOAD_BALANCERS * h,
              f"forwarding rules; plus {lb['perGbProcessed']} USD/GB processed, not estimated")

    micro = _lookup(sheet, prices["machineTypes"], CONNECTOR_MACHINE_TYPE,
                    f"gcp machine type {CONNECTOR_MACHINE_TYPE}")
    fn = prices["functions"]
    culler_runs = runs_per_month(p.culling.schedule)
    idle = ALLOCATOR_MIN_INSTANCES * h * 3600 * (
        FUNCTION_VCPU * fn["idlePerVcpuSecond"] + FUNCTION_MEMORY_GIB * fn["idlePerGibSecond"])
    active = culler_runs * CULLER_SECONDS_PER_RUN * (
        FUNCTION_VCPU * fn["perVcpuSecond"] + FUNCTION_MEMORY_GIB * fn["perGibSecond"])
    requests = culler_runs / 1e6 * fn["perMillionRequests"]
    connector = micro["perHour"] * CONNECTOR_MIN_INSTANCES * h if micro else 0.0
    sheet.add("Cloud Functions: allocator, culler, VPC connector", idle + active + requests + connector,
              f"allocator {ALLOCATOR_MIN_INSTANCES} warm instance; culler {culler_runs:,.0f} runs "
              f"x {CULLER_SECONDS_PER_RUN:g} s assumed; connector {CONNECTOR_MIN_INSTANCES} x "
              f"{CONNECTOR_MACHINE_TYPE}; sign-ins add little; before free tier")
    sheet.add("Cloud Scheduler", prices["scheduler"]["perJobMonth"] * SCHEDULER_JOBS,
              f"{SCHEDULER_JOBS} job (culler, '{p.culling.schedule}'); before the 3 free jobs")
    return gpu_hour


def _aws(stack, table: dict, sheet: _Sheet) -> Optional[float]:
    p = stack.platform
    a = p.aws
    region = stack.aws_region or "us-east-1"
    prices = table.get("aws", {}).get(region)
    if prices is None or a is None:
        sheet.miss(f"aws region {region} (the table prices {', '.join(table.get('aws', {}))})")
        return None
    h = sheet.hours
    sheet.add("EKS control plane", prices["eks"]["clusterPerHour"] * h, "one cluster")

    system = _lookup(sheet, prices["instanceTypes"], a.system_instance_type,
                     f"aws instance type {a.system_instance_type}")
    if system is not None:
        disk = prices["ebs"]["gp3PerGbMonth"] * AWS_NODE_DISK_GB
        sheet.add(f"system nodes: {a.system_nodes} x {a.system_instance_type}, all month",
                  (system["perHour"] * h + disk) * a.system_nodes,
                  f"Karpenter, KEDA, controllers; {AWS_NODE_DISK_GB} GB gp3 each")

    nat = prices["nat"]
    sheet.add(f"NAT gateways: {a.zone_count} (one per zone)",
              (nat["perGatewayHour"] + prices["publicIpv4PerHour"]) * a.zone_count * h,
              f"with their Elastic IPs; plus {nat['perGbProcessed']} USD/GB processed, not estimated")

    sheet.add("EFS model store", prices["efs"]["standardPerGbMonth"] * MODEL_STORE_GB,
              f"{MODEL_STORE_GB} GB of models assumed (Standard storage)")

    jobs = a.api_quota_per_day * DAYS_PER_MONTH
    lam = prices["lambda"]
    sheet.add("API Gateway + submit Lambda, at the daily quota",
              jobs / 1e6 * (prices["apiGateway"]["restPerMillionRequests"] + lam["perMillionRequests"]
                            + prices["sns"]["perMillionPublishes"])
              + jobs * SUBMIT_LAMBDA_GB * SUBMIT_LAMBDA_SECONDS * lam["perGbSecond"],
              f"upper bound: {a.api_quota_per_day:,} jobs/day (apiQuotaPerDay)")

    polls = len(a.runtimes) * h * 3600 / KEDA_POLLING_SECONDS
    sheet.add(f"SQS: {len(a.runtimes)} queue(s) + dead-letter queues",
              polls / 1e6 * prices["sqs"]["standardPerMillionRequests"],
              f"KEDA polls each queue every {KEDA_POLLING_SECONDS} s; job messages add little")

    cheapest = None
    for family in a.gpu_families:
        typ = f"{family}.xlarge"
        found = prices["instanceTypes"].get(typ)
        if found is None:
            sheet.miss(f"aws instance type {typ}")
        elif cheapest is None or found["perHour"] / found.get("gpus", 1) < cheapest[1]:
            cheapest = (typ, found["perHour"] / found.get("gpus", 1))
    sheet.add("GPU nodes (Karpenter, scale from zero)", 0.0,
              "no warm GPU capacity; each job pays GPU time"
              + (f" from {cheapest[1]:.2f} USD/h ({cheapest[0]}, on-demand)" if cheapest else ""))
    return cheapest[1] if cheapest else None


def estimate(stack_config, prices: Optional[dict] = None) -> dict:
    """{"lines", "totalMonthlyUsd", "gpuHourUsd", "missing", "priceTable"} for a StackConfig."""
    table = prices if prices is not None else price_table()
    sheet = _Sheet(table.get("hoursPerMonth", 730))
    if stack_config.platform.cloud == "gcp":
        gpu_hour = _gcp(stack_config, table, sheet)
    else:
        gpu_hour = _aws(stack_config, table, sheet)
    return {
        "lines": sheet.lines,
        "totalMonthlyUsd": round(sum(line["monthlyUsd"] for line in sheet.lines), 2),
        "gpuHourUsd": round(gpu_hour, 4) if gpu_hour is not None else None,
        "missing": sheet.missing,
        "priceTable": {"version": table.get("version"),
                       "transcribed": (table.get("sources") or {}).get("transcribed")},
    }
