"""AWS: the batch variant's standing costs, from the resources its plan registers."""

from __future__ import annotations

from typing import Optional

from components.config.aws_instances import family, fitting_types

from .assumptions import (
    DAYS_PER_MONTH,
    EKS_NODE_GROUP_DEFAULT_DISK_GB,
    KEDA_DEFAULT_POLLING_SECONDS,
    LAMBDA_DEFAULT_MEMORY_MB,
    LAMBDA_SECONDS_PER_JOB,
    MODEL_STORE_GB,
    SNS_PUBLISHES_PER_JOB,
    WEEKS_PER_MONTH,
)
from .sheet import Plan, Sheet, number, read


def _worker_requests(plan: Plan) -> list[tuple[str, str, str]]:
    """(workload, cpu, memory) of the WebUI container of each GPU worker in the plan."""
    found = []
    for r in plan.of("kubernetes:keda.sh/v1alpha1:ScaledJob") + plan.of("kubernetes:apps/v1:Deployment"):
        spec = (read(r.inputs, "spec", "jobTargetRef", "template", "spec")
                or read(r.inputs, "spec", "template", "spec") or {})
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            requests = read(c, "resources", "requests", default={}) or {}
            if "nvidia.com/gpu" in requests:
                found.append((read(r.inputs, "metadata", "name", default=r.name),
                              str(requests.get("cpu", "1m")), str(requests.get("memory", "1Mi"))))
    return found


def _karpenter_gpu_hour(plan: Plan, prices: dict, sheet: Sheet) -> Optional[tuple[str, float]]:
    """The GPU-hour of the node Karpenter would launch for a worker: the cheapest instance type
    of the NodePool's families whose allocatable holds the worker's requests (per GPU)."""
    families: list[str] = []
    for r in plan.of("kubernetes:karpenter.sh/v1:NodePool"):
        for req in read(r.inputs, "spec", "template", "spec", "requirements", default=[]):
            if read(req, "operator") == "In" and read(req, "key") in (
                    "karpenter.k8s.aws/instance-family", "node.kubernetes.io/instance-type"):
                families += [family(v) for v in read(req, "values", default=[])]
    if not families:
        return None
    priced = {t: p for t, p in prices["instanceTypes"].items() if p.get("gpus")}
    for fam in dict.fromkeys(families):
        if not any(family(t) == fam for t in priced):
            sheet.miss(f"aws instance family {fam}")
    workers = _worker_requests(plan) or [("any worker", "1m", "1Mi")]
    cheapest = None
    for workload, cpu, memory in workers:
        fitting = [t for t in fitting_types(families, cpu, memory) if t in priced]
        if not fitting:
            sheet.miss(f"aws instance type for {workload} ({cpu} CPU, {memory}) in {', '.join(families)}")
            continue
        typ = min(fitting, key=lambda t: priced[t]["perHour"] / priced[t]["gpus"])
        per_gpu = priced[typ]["perHour"] / priced[typ]["gpus"]
        if cheapest is None or per_gpu > cheapest[1]:
            cheapest = (typ, per_gpu)   # the dearest worker's node: no estimate below it
    return cheapest


def standing_costs(plan: Plan, region: str, table: dict, sheet: Sheet) -> Optional[float]:
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
    interface = [r for r in plan.of("aws:ec2/vpcEndpoint:VpcEndpoint")
                 if read(r.inputs, "vpcEndpointType", default="Gateway") == "Interface"]
    if interface:  # Gateway endpoints (S3, DynamoDB) are free; Interface ones bill per AZ-hour
        zones = sum(len(read(r.inputs, "subnetIds", default=[])) or 1 for r in interface)
        sheet.add(f"VPC interface endpoints: {len(interface)}",
                  prices["vpcEndpoint"]["interfacePerAzHour"] * zones * h,
                  f"{zones} endpoint-AZ(s); plus data processed, not estimated")
    secrets = plan.of("aws:secretsmanager/secret:Secret")
    if secrets:
        sheet.add(f"Secrets Manager: {len(secrets)} secret(s)",
                  prices["secretsManager"]["perSecretMonth"] * len(secrets), "plus API calls, not estimated")
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
