"""The monthly cost estimate prices what the plan registers: lines per cost item, hours from
peak windows, resources found by type, nothing restated from components/, nothing guessed."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest

from tools import cost
from tools.preview import PlanResult, Registration

HOURS = 730


def _line(estimate: dict, starts: str) -> dict:
    found = [line for line in estimate["lines"] if line["item"].startswith(starts)]
    assert len(found) == 1, (starts, [line["item"] for line in estimate["lines"]])
    return found[0]


def _gcp_prices() -> dict:
    return cost.price_table()["gcp"]["us-central1"]


def _aws_prices() -> dict:
    return cost.price_table()["aws"]["us-east-1"]


def _one(plan: PlanResult, type_: str, name_contains: str = "") -> Registration:
    return plan.one(type_, name_contains)


def _edited(plan: PlanResult, *, drop_types: tuple[str, ...] = (),
            add: tuple[Registration, ...] = ()) -> PlanResult:
    """A copy of a plan with some resource types removed and some resources added."""
    resources = [copy.deepcopy(r) for r in plan.resources if r.type not in drop_types]
    return dataclasses.replace(plan, resources=resources + list(add))


def _resource(type_: str, name: str, inputs: dict) -> Registration:
    return Registration(urn=f"urn:pulumi:dev::sdfleet::{type_}::{name}", type=type_, name=name,
                        parent=None, inputs=inputs, provider=None, custom=True, dependencies=[])


# --- Cron arithmetic (on expressions the config models validated) -----------------------------------

@pytest.mark.parametrize("cron,duration,hours", [
    ("0 8 * * 1-5", "10h", 50.0),      # weekdays 08:00-18:00
    ("0 22 * * *", "4h", 28.0),        # across midnight, every day
    ("0 8,12 * * MON-FRI", "6h", 50.0),  # 08:00-14:00 and 12:00-18:00 overlap: counted once
    ("30 9 * * 6", "1h30m", 1.5),
    ("0 0 * * 0", "168h", 168.0),      # a window as long as the week covers all of it
])
def test_peak_window_hours_per_week(cron, duration, hours):
    assert cost.window_hours_per_week(cron, duration) == pytest.approx(hours, rel=0.01)


def test_cron_runs_per_month():
    assert cost.runs_per_month("* * * * *") == pytest.approx(HOURS * 60, rel=0.001)
    assert cost.runs_per_month("*/5 * * * *") == pytest.approx(HOURS * 12, rel=0.001)
    assert cost.runs_per_month("0 3 1 * *") == 1


# --- The default stacks ---------------------------------------------------------------------------

def test_gcp_estimate_has_every_standing_cost(plan_of):
    plan, stack_config = plan_of("single-profile")
    estimate = cost.estimate(plan, stack_config)
    items = [line["item"] for line in estimate["lines"]]
    for starts in ("GKE cluster management fee", "node pool system", "warm GPU buffer", "placeholders",
                   "Filestore", "Memorystore", "Cloud NAT", "HTTPS load balancer",
                   "Cloud Function sdfleet-fn-allocator", "Cloud Function sdfleet-fn-culler",
                   "VPC connector", "Cloud Scheduler"):
        assert any(item.startswith(starts) for item in items), (starts, items)
    assert estimate["totalMonthlyUsd"] == pytest.approx(sum(x["monthlyUsd"] for x in estimate["lines"]))
    assert estimate["totalMonthlyUsd"] > 0
    assert estimate["missing"] == []
    assert estimate["priceTable"]["version"] and estimate["priceTable"]["transcribed"]


@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_every_resource_type_of_a_default_stack_is_classified(plan_of, stack):
    """Each registered type is priced, free of its own, or billed by use: none is unknown."""
    plan, stack_config = plan_of(stack)
    estimate = cost.estimate(plan, stack_config)
    assert [m for m in estimate["missing"] if m.startswith("resource type")] == []
    for type_ in {r.type for r in plan.resources}:
        assert (type_ in cost.PRICED or cost.no_charge(type_) or type_ in cost.USAGE_BILLED
                or type_.startswith(cost.NO_CHARGE_PREFIXES)), type_


def test_a_billable_type_the_estimate_does_not_know_is_reported_not_free(plan_of):
    plan, stack_config = plan_of("single-profile")
    vm = _resource("gcp:compute/instance:Instance", "bastion", {"machineType": "e2-small"})
    estimate = cost.estimate(_edited(plan, add=(vm,)), stack_config)
    assert "resource type gcp:compute/instance:Instance (1): not known to tools/cost (add it to resource_types.py)" in estimate["missing"]


def test_the_owned_load_balancer_and_image_builds_need_no_new_entries(plan_of):
    """The resources replacing the GKE Ingress (an owned load balancer with IAP) and the image
    builds are known: the load balancer's parts other than forwarding rules carry no charge,
    IAM grants none, the registry and builds are billed by use."""
    plan, stack_config = plan_of("single-profile")
    added = tuple(_resource(t, f"lb-{i}", {}) for i, t in enumerate((
        "gcp:compute/backendService:BackendService", "gcp:compute/uRLMap:URLMap",
        "gcp:compute/targetHttpsProxy:TargetHttpsProxy", "gcp:compute/targetHttpProxy:TargetHttpProxy",
        "gcp:compute/managedSslCertificate:ManagedSslCertificate",
        "gcp:compute/globalForwardingRule:GlobalForwardingRule",
        "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember",
        "gcp:iap/webBackendServiceIamBinding:WebBackendServiceIamBinding",
        "gcp:storage/bucketIAMBinding:BucketIAMBinding",
        "gcp:cloudbuild/trigger:Trigger", "command:local:Command")))
    estimate = cost.estimate(_edited(plan, add=added), stack_config)
    assert estimate["missing"] == []
    assert "Cloud Build: per build-minute, when images are built" in estimate["usageBilled"]


# --- Values come from the registered resources, not from a copy of their settings ------------------

def test_connector_minimum_instances_and_machine_come_from_the_plan(plan_of):
    plan, stack_config = plan_of("single-profile")
    edited = _edited(plan)
    connector = _one(edited, "gcp:vpcaccess/connector:Connector")
    connector.inputs.update(minInstances=5, machineType="e2-small")
    estimate = cost.estimate(edited, stack_config)
    assert _line(estimate, "VPC connector")["monthlyUsd"] == pytest.approx(
        5 * _gcp_prices()["machineTypes"]["e2-small"]["perHour"] * HOURS, abs=0.01)


def test_function_memory_cpu_and_warm_instances_come_from_the_plan(plan_of):
    plan, stack_config = plan_of("single-profile")
    edited = _edited(plan)
    allocator = _one(edited, "gcp:cloudfunctionsv2/function:Function", "allocator")
    allocator.inputs["serviceConfig"].update(availableMemory="1Gi", minInstanceCount=3)
    fn = _gcp_prices()["functions"]
    # 1 GiB gets 0.583 vCPU by default (cloud.google.com/functions/docs/configuring/memory).
    expected = 3 * HOURS * 3600 * (0.583 * fn["idlePerVcpuSecond"] + 1 * fn["idlePerGibSecond"])
    line = _line(cost.estimate(edited, stack_config), "Cloud Function sdfleet-fn-allocator")
    assert line["monthlyUsd"] == pytest.approx(expected, abs=0.01)
    assert "3 warm instance(s)" in line["note"]


def test_scheduled_runs_follow_the_scheduler_job_that_calls_the_function(plan_of):
    every_minute, stack_config = plan_of("single-profile")
    every_five, _ = plan_of("single-profile", lambda p: p["culling"].update(schedule="*/5 * * * *"))
    assert _one(every_five, "gcp:cloudscheduler/job:Job").inputs["schedule"] == "*/5 * * * *"
    fn = _gcp_prices()["functions"]
    per_run = cost.SECONDS_PER_SCHEDULED_RUN * (0.333 * fn["perVcpuSecond"] + 0.5 * fn["perGibSecond"]) \
        + fn["perMillionRequests"] / 1e6
    for plan, runs in ((every_minute, HOURS * 60), (every_five, HOURS * 12)):
        line = _line(cost.estimate(plan, stack_config), "Cloud Function sdfleet-fn-culler")
        assert line["monthlyUsd"] == pytest.approx(runs * per_run, abs=0.006)  # lines round to cents


def test_a_cron_the_estimate_cannot_count_is_reported_not_raised(plan_of):
    """The config models validate crons before the program runs; should one still reach the
    estimate, `make plan` names it instead of failing with a traceback."""
    plan, stack_config = plan_of("single-profile")
    edited = _edited(plan)
    _one(edited, "gcp:cloudscheduler/job:Job").inputs["schedule"] = "61 25 * * 9"
    autoscaler = _one(edited, "kubernetes:autoscaling.agones.dev/v1:FleetAutoscaler")
    peak = next(p for p in autoscaler.inputs["spec"]["policy"]["chain"] if p["type"] == "Schedule")
    peak["schedule"]["activePeriod"]["startCron"] = "0 8 * * 9"
    estimate = cost.estimate(edited, stack_config)
    assert "scheduler job sdfleet-fn-cull-schedule '61 25 * * 9': cron minute '61' is outside 0-59" \
        in estimate["missing"]
    assert "peak window '0 8 * * 9' for 10h: cron dow '9' is outside 0-7" in estimate["missing"]
    assert not any(line["item"].startswith("warm GPU buffer, peak") for line in estimate["lines"])


def test_forwarding_rules_of_an_owned_load_balancer_are_counted_from_the_plan(plan_of):
    """The program's own load balancer: its global forwarding rules (443 and the 80 redirect)."""
    plan, stack_config = plan_of("single-profile")
    lb = _gcp_prices()["loadBalancer"]
    line = _line(cost.estimate(plan, stack_config), "HTTPS load balancer: 2 forwarding rule(s)")
    assert line["monthlyUsd"] == pytest.approx(lb["firstFiveRulesPerHour"] * HOURS, abs=0.01)
    assert "sdfleet-lb-https-rule" in line["note"] and "sdfleet-lb-redirect-rule" in line["note"]
    more = tuple(_resource("gcp:compute/globalForwardingRule:GlobalForwardingRule", f"rule-{i}",
                           {"name": f"sdfleet-rule-{i}", "loadBalancingScheme": "EXTERNAL_MANAGED"})
                 for i in range(5))
    many = _edited(plan, add=more)
    assert _line(cost.estimate(many, stack_config), "HTTPS load balancer: 7")["monthlyUsd"] == pytest.approx(
        (lb["firstFiveRulesPerHour"] + 2 * lb["additionalRulePerHour"]) * HOURS, abs=0.01)


def test_system_nodes_and_storage_follow_the_config_through_the_plan(plan_of):
    plan, stack_config = plan_of("single-profile", lambda p: (
        p["systemPool"].update(machineType="e2-standard-8", minNodes=2, diskSizeGb=100, diskType="pd-standard"),
        p["storage"].update(tier="BASIC_SSD", capacityGb=2560)))
    prices = _gcp_prices()
    estimate = cost.estimate(plan, stack_config)
    system = 2 * (prices["machineTypes"]["e2-standard-8"]["perHour"] * HOURS
                  + prices["disks"]["pd-standard"]["perGbMonth"] * 100)
    assert _line(estimate, "node pool system: 2 x e2-standard-8")["monthlyUsd"] == pytest.approx(system, abs=0.01)
    assert _line(estimate, "Filestore BASIC_SSD")["monthlyUsd"] == \
        pytest.approx(prices["filestore"]["BASIC_SSD"]["perGibMonth"] * 2560, abs=0.01)


def test_peak_hours_buffer_and_placeholders_are_priced_for_their_hours(plan_of):
    def edit(p):
        p["gpuPools"] = [{"name": "t4", "machineType": "n1-standard-8", "accelerator": "nvidia-tesla-t4",
                          "maxNodes": 10, "diskSizeGb": 100, "diskType": "pd-ssd"}]
        p["fleet"].update(gpuPool="t4", buffer=1, placeholders=2,
                          peakHours={"startCron": "0 8 * * 1-5", "duration": "10h", "buffer": 3})
        p["limits"] = {"maxGpuNodes": 10}
    plan, stack_config = plan_of("single-profile", edit)
    estimate = cost.estimate(plan, stack_config)
    prices = _gcp_prices()
    node_hour = (prices["machineTypes"]["n1-standard-8"]["perHour"]
                 + prices["accelerators"]["nvidia-tesla-t4"]["perGpuHour"]
                 + prices["disks"]["pd-ssd"]["perGbMonth"] * 100 / HOURS)
    # 50 h/week in hours per month (a calendar year has 260-262 weekdays: within 0.5 %)
    peak = 50 * 365 / 12 / 7
    assert _line(estimate, "warm GPU buffer: 1 x")["monthlyUsd"] == \
        pytest.approx(node_hour * (HOURS - peak), rel=0.005)
    assert _line(estimate, "warm GPU buffer, peak hours: 3 x")["monthlyUsd"] == \
        pytest.approx(3 * node_hour * peak, rel=0.005)
    assert _line(estimate, "placeholders: 2 x")["monthlyUsd"] == pytest.approx(2 * node_hour * HOURS, abs=0.02)
    assert estimate["gpuHourUsd"] == pytest.approx(node_hour, abs=0.0001)
    assert estimate["missing"] == []


def test_gpu_time_sharing_divides_the_person_hour(plan_of):
    def pool(clients):
        def edit(p):
            p["gpuPools"] = [{"name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4",
                              "maxNodes": 4, **({"timeSharingClients": clients} if clients else {})}]
            p["fleet"]["gpuPool"] = "l4"
        return edit
    alone_plan, stack_config = plan_of("single-profile", pool(None))
    shared_plan, _ = plan_of("single-profile", pool(4))
    alone = cost.estimate(alone_plan, stack_config)["gpuHourUsd"]
    shared = cost.estimate(shared_plan, stack_config)["gpuHourUsd"]
    assert shared == pytest.approx(alone / 4, abs=0.0001)
    # g2 prices include their L4: the accelerator is not added a second time.
    nc = _one(alone_plan, "gcp:container/nodePool:NodePool", "l4").inputs["nodeConfig"]
    prices = _gcp_prices()
    assert alone == pytest.approx(prices["machineTypes"]["g2-standard-8"]["perHour"]
                                  + prices["disks"][nc["diskType"]]["perGbMonth"] * nc["diskSizeGb"] / HOURS,
                                  abs=0.0001)


def test_unpriced_machine_type_and_tier_are_reported_not_guessed(plan_of):
    def edit(p):
        p["gpuPools"] = [{"name": "big", "machineType": "g2-standard-96", "accelerator": "nvidia-l4",
                          "acceleratorCount": 8, "maxNodes": 2}]
        p["fleet"]["gpuPool"] = "big"
        p["storage"] = {"tier": "ZONAL", "capacityGb": 1024}
    plan, stack_config = plan_of("single-profile", edit)
    estimate = cost.estimate(plan, stack_config)
    assert "gcp machine type g2-standard-96" in estimate["missing"]
    assert "gcp Filestore tier ZONAL" in estimate["missing"]
    assert estimate["gpuHourUsd"] is None
    assert not any(line["item"].startswith(("warm GPU buffer", "Filestore")) for line in estimate["lines"])
    assert estimate["totalMonthlyUsd"] > 0  # what is priced is still summed


def test_region_missing_from_the_table_prices_nothing(plan_of):
    plan, stack_config = plan_of("single-profile")
    table = copy.deepcopy(cost.price_table())
    del table["gcp"]["us-central1"]
    estimate = cost.estimate(plan, stack_config, prices=table)
    assert estimate["lines"] == [] and estimate["totalMonthlyUsd"] == 0
    assert any(m.startswith("gcp region us-central1") for m in estimate["missing"])


# --- AWS ----------------------------------------------------------------------------------------------

def test_aws_estimate_has_every_standing_cost(plan_of):
    plan, stack_config = plan_of("aws-dev")
    estimate = cost.estimate(plan, stack_config)
    prices = _aws_prices()
    group = _one(plan, "aws:eks/nodeGroup:NodeGroup").inputs
    size, instance = group["scalingConfig"]["desiredSize"], group["instanceTypes"][0]
    assert _line(estimate, "EKS control plane")["monthlyUsd"] == pytest.approx(
        prices["eks"]["clusterPerHour"] * HOURS)
    assert _line(estimate, f"node group sdbatch-eks-system: {size} x {instance}")["monthlyUsd"] == pytest.approx(
        size * (prices["instanceTypes"][instance]["perHour"] * HOURS
                + prices["ebs"]["gp3PerGbMonth"] * cost.EKS_NODE_GROUP_DEFAULT_DISK_GB), abs=0.01)
    gateways = len(plan.of_type("aws:ec2/natGateway:NatGateway"))
    assert gateways == stack_config.platform.aws.network.zone_count
    assert _line(estimate, f"NAT gateways: {gateways}")["monthlyUsd"] == pytest.approx(
        gateways * HOURS * prices["nat"]["perGatewayHour"], abs=0.01)
    assert _line(estimate, f"public IPv4 addresses: {gateways}")["monthlyUsd"] == pytest.approx(
        gateways * HOURS * prices["publicIpv4PerHour"], abs=0.01)
    assert _line(estimate, "KMS keys: 1")["monthlyUsd"] == prices["kms"]["perKeyMonth"]
    for starts in ("EFS", "API Gateway", "SQS", "GPU nodes"):
        _line(estimate, starts)
    # Karpenter picks the cheapest type the worker fits: the default worker fits a g6.xlarge,
    # cheaper per GPU than a g5.xlarge.
    assert estimate["gpuHourUsd"] == prices["instanceTypes"]["g6.xlarge"]["perHour"]
    assert estimate["missing"] == []


def test_a_worker_asking_for_a_whole_xlarge_is_priced_on_the_2xlarge_karpenter_launches(plan_of):
    def ask_16gi(platform):
        for runtime in platform["aws"]["runtimes"]:
            runtime.update(cpu="4", memory="16Gi")
    plan, stack_config = plan_of("aws-dev", ask_16gi)
    estimate = cost.estimate(plan, stack_config)
    assert estimate["gpuHourUsd"] == _aws_prices()["instanceTypes"]["g6.2xlarge"]["perHour"]
    assert "g6.2xlarge" in _line(estimate, "GPU nodes")["note"]


def test_queue_polling_follows_the_scalers_polling_interval(plan_of):
    """KEDA polls each queue every `pollingInterval` seconds the scaler sets (30 when unset)."""
    plan, stack_config = plan_of("aws-dev")
    scalers = plan.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject") + \
        plan.of_type("kubernetes:keda.sh/v1alpha1:ScaledJob")
    assert len(scalers) == len(stack_config.platform.aws.runtimes)
    polls = sum(HOURS * 3600 / s.inputs["spec"].get("pollingInterval", 30) for s in scalers)
    expected = polls / 1e6 * _aws_prices()["sqs"]["standardPerMillionRequests"]
    assert _line(cost.estimate(plan, stack_config), "SQS")["monthlyUsd"] == pytest.approx(expected, abs=0.01)
    edited = _edited(plan)
    for s in edited.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"):
        del s.inputs["spec"]["pollingInterval"]
    slower = polls - sum(HOURS * 3600 / s.inputs["spec"]["pollingInterval"]
                         for s in plan.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject")) \
        + sum(HOURS * 3600 / cost.KEDA_DEFAULT_POLLING_SECONDS
              for _ in edited.of_type("kubernetes:keda.sh/v1alpha1:ScaledObject"))
    assert _line(cost.estimate(edited, stack_config), "SQS")["monthlyUsd"] == pytest.approx(
        slower / 1e6 * _aws_prices()["sqs"]["standardPerMillionRequests"], abs=0.01)


def test_api_line_uses_the_usage_plan_quota_and_the_lambda_memory(plan_of):
    plan, stack_config = plan_of("aws-dev")
    quota = _one(plan, "aws:apigateway/usagePlan:UsagePlan").inputs["quotaSettings"]
    memory_gb = _one(plan, "aws:lambda/function:Function").inputs["memorySize"] / 1024
    prices = _aws_prices()
    jobs = quota["limit"] * cost.DAYS_PER_MONTH
    expected = jobs / 1e6 * (prices["apiGateway"]["restPerMillionRequests"] + prices["lambda"]["perMillionRequests"]
                             + prices["sns"]["perMillionPublishes"]) \
        + jobs * memory_gb * cost.LAMBDA_SECONDS_PER_JOB * prices["lambda"]["perGbSecond"]
    line = _line(cost.estimate(plan, stack_config), "API Gateway")
    assert line["monthlyUsd"] == pytest.approx(expected, abs=0.01)
    assert re.search(r"5,000 jobs per day", line["note"])


def test_interface_endpoints_and_secrets_are_standing_costs(plan_of):
    plan, stack_config = plan_of("aws-dev")
    prices = _aws_prices()
    gateway = _one(plan, "aws:ec2/vpcEndpoint:VpcEndpoint")
    assert gateway.inputs["vpcEndpointType"] == "Gateway"
    assert not any(line["item"].startswith("VPC interface") for line in cost.estimate(plan, stack_config)["lines"])
    interface = _resource("aws:ec2/vpcEndpoint:VpcEndpoint", "ecr-api",
                          {"vpcEndpointType": "Interface", "subnetIds": ["a", "b", "c"]})
    secret = _resource("aws:secretsmanager/secret:Secret", "hf-token", {})
    estimate = cost.estimate(_edited(plan, add=(interface, secret)), stack_config)
    assert _line(estimate, "VPC interface endpoints: 1")["monthlyUsd"] == pytest.approx(
        3 * prices["vpcEndpoint"]["interfacePerAzHour"] * HOURS, abs=0.01)
    assert _line(estimate, "Secrets Manager: 1")["monthlyUsd"] == prices["secretsManager"]["perSecretMonth"]


def test_price_table_is_read_once():
    assert cost.price_table() is cost.price_table()
