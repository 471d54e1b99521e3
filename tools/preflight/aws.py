"""AWS preflight: what a first `pulumi up` of a batch stack needs from the account.

Reads with the deployer's credentials (boto3): IAM (the EC2 Spot service-linked role),
EC2 (which GPU instance types the region offers), Service Quotas (G/VT and P vCPUs, On-Demand
and Spot). Nothing is changed.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from components.config.aws_instances import INSTANCE_TYPES, default_worker, family, fitting_types, types_of
from tools.preflight.egress import admitted, egress_address
from tools.preflight.report import Check, failed, note, passed

SPOT_ROLE = "AWSServiceRoleForEC2Spot"
# EC2's vCPU quotas by instance family letter: (On-Demand, Spot) quota codes.
VCPU_QUOTAS = {"g": ("L-DB2E81BA", "L-3819A6DF"), "p": ("L-417A185B", "L-7212CCBC")}
QUOTA_NAMES = {"L-DB2E81BA": "Running On-Demand G and VT instances",
               "L-3819A6DF": "All G and VT Spot Instance Requests",
               "L-417A185B": "Running On-Demand P instances",
               "L-7212CCBC": "All P Spot Instance Requests"}


def _spot_role(iam) -> Check:
    try:
        iam.get_role(RoleName=SPOT_ROLE)
        return passed("EC2 Spot service-linked role", f"{SPOT_ROLE} exists")
    except ClientError as error:
        if error.response["Error"]["Code"] != "NoSuchEntity":
            return failed("EC2 Spot service-linked role", f"cannot read it: {error}",
                          "allow iam:GetRole for the deployer")
    return failed("EC2 Spot service-linked role",
                  f"{SPOT_ROLE} is missing (new accounts lack it): Karpenter's Spot launches fail "
                  "and every node is On-Demand",
                  "aws iam create-service-linked-role --aws-service-name spot.amazonaws.com")


def _worker_types(runtime, families: list[str]) -> list[str]:
    cpu, memory = default_worker(families)
    return fitting_types(families, runtime.cpu or cpu, runtime.memory or memory)


def _offerings(ec2, region: str, families: list[str], runtimes) -> tuple[list[Check], set[str]]:
    try:
        answer = ec2.describe_instance_type_offerings(
            LocationType="region",
            Filters=[{"Name": "instance-type", "Values": types_of(families)}])
    except (BotoCoreError, ClientError) as error:
        return [failed("GPU instance types", f"cannot list offerings in {region}: {error}",
                       "allow ec2:DescribeInstanceTypeOfferings for the deployer")], set()
    offered = {o["InstanceType"] for o in answer.get("InstanceTypeOfferings", [])}
    checks = []
    for fam in families:
        here = sorted(t for t in offered if family(t) == fam)
        if here:
            checks.append(passed(f"instance family {fam} in {region}", ", ".join(here)))
        else:
            checks.append(failed(f"instance family {fam} in {region}", "not offered in this region",
                                 f"remove {fam} from aws.gpu.families, or use a region that has it "
                                 f"(aws ec2 describe-instance-type-offerings --filters "
                                 f"Name=instance-type,Values={fam}.xlarge --region <region>)"))
    for rt in runtimes:
        fits = [t for t in _worker_types(rt, families) if t in offered]
        if not fits:
            checks.append(failed(f"runtime {rt.name}", f"no offered instance type in {region} "
                                 "holds its worker", "leave its cpu and memory unset, or add a "
                                 "family with larger nodes to aws.gpu.families"))
    return checks, offered


def _quotas(quotas, region: str, families: list[str], runtimes, offered: set[str]) -> list[Check]:
    checks = []
    for letter, (on_demand, spot) in VCPU_QUOTAS.items():
        mine = [f for f in families if f.startswith(letter)]
        if not mine:
            continue
        fitting = [t for rt in runtimes for t in _worker_types(rt, mine) if t in offered] or types_of(mine)
        need = min(INSTANCE_TYPES[t].vcpus for t in fitting)
        values = {}
        for code in (on_demand, spot):
            try:
                values[code] = quotas.get_service_quota(ServiceCode="ec2", QuotaCode=code)["Quota"]["Value"]
            except (BotoCoreError, ClientError) as error:
                checks.append(note(f"quota {QUOTA_NAMES[code]}", f"cannot read it ({error}); "
                                   f"a worker needs {need} vCPUs",
                                   f"aws service-quotas get-service-quota --service-code ec2 "
                                   f"--quota-code {code} --region {region}"))
        for code, value in values.items():
            name = f"quota {QUOTA_NAMES[code]} in {region}"
            fix = (f"aws service-quotas request-service-quota-increase --service-code ec2 "
                   f"--quota-code {code} --desired-value {need * 4} --region {region}")
            if value >= need:
                checks.append(passed(name, f"{value:g} vCPUs (a worker's node has {need})"))
            elif code == spot and values.get(on_demand, 0) >= need:
                checks.append(note(name, f"{value:g} vCPUs: no Spot node fits, Karpenter "
                                         "launches every node On-Demand", fix))
            else:
                checks.append(failed(name, f"{value:g} vCPUs; a worker's node has {need}: "
                                           "no GPU node can start", fix))
    return checks


def _api_access(cidrs: list[str], address: str | None) -> Check:
    name = "EKS API from here"
    if not cidrs:
        return failed(name, "aws.cluster.publicAccessCidrs is empty (private endpoint only): "
                            "`pulumi up` installs Karpenter and KEDA through the EKS API",
                      "add your egress range to aws.cluster.publicAccessCidrs, or run pulumi "
                      "from inside the VPC")
    if address is None:
        return note(name, "could not tell this machine's public address; check that "
                          "aws.cluster.publicAccessCidrs holds it")
    if admitted(address, cidrs):
        return passed(name, f"{address} is inside aws.cluster.publicAccessCidrs")
    return failed(name, f"{address} is outside aws.cluster.publicAccessCidrs ({', '.join(cidrs)})",
                  f"pulumi config set --path 'sdfleet:platform.aws.cluster.publicAccessCidrs"
                  f"[{len(cidrs)}]' {address}/32")


def run(stack_config, session, address: str | None | bool = True) -> list[Check]:
    aws = stack_config.platform.aws
    region = stack_config.aws_region
    families = list(aws.gpu.families)
    checks = [_spot_role(session.client("iam"))]
    offer_checks, offered = _offerings(session.client("ec2", region_name=region), region,
                                       families, aws.runtimes)
    checks += offer_checks
    checks += _quotas(session.client("service-quotas", region_name=region), region, families,
                      aws.runtimes, offered)
    checks.append(_api_access(list(aws.cluster.public_access_cidrs),
                              egress_address() if address is True else address))
    return checks
