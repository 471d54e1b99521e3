"""Monthly cost estimate of a stack: the resources its plan registers, priced from tools/prices.yaml.

`make plan` prints it (tools/plan.py). One module per concern: assumptions (usage, upstream
defaults, the price table), cron, sheet (reading the plan), resource_types, gcp, aws. The estimate reads the plan that tools/preview.py records
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

from typing import Optional

from . import aws, gcp
from .assumptions import (
    DAYS_PER_MONTH,
    EKS_NODE_GROUP_DEFAULT_DISK_GB,
    KEDA_DEFAULT_POLLING_SECONDS,
    LAMBDA_SECONDS_PER_JOB,
    SECONDS_PER_SCHEDULED_RUN,
    WEEKS_PER_MONTH,
    price_table,
)
from .cron import duration_hours, runs_per_month, window_hours_per_week
from .resource_types import NO_CHARGE, NO_CHARGE_PREFIXES, PRICED, USAGE_BILLED, classify, no_charge
from .sheet import Plan, Sheet


def estimate(plan, stack_config, prices: Optional[dict] = None) -> dict:
    """{"lines", "totalMonthlyUsd", "gpuHourUsd", "missing", "usageBilled", "priceTable"} for the
    resources a plan (tools.preview.PlanResult) registers; `stack_config` gives cloud and region."""
    table = prices if prices is not None else price_table()
    sheet = Sheet(table.get("hoursPerMonth", 730))
    view = Plan(list(plan.resources))
    classify(view, sheet)
    if stack_config.platform.cloud == "gcp":
        gpu_hour = gcp.standing_costs(view, stack_config.gcp_region or "us-central1", table, sheet)
    else:
        gpu_hour = aws.standing_costs(view, stack_config.aws_region or "us-east-1", table, sheet)
    return {
        "lines": sheet.lines,
        "totalMonthlyUsd": round(sum(line["monthlyUsd"] for line in sheet.lines), 2),
        "gpuHourUsd": round(gpu_hour, 4) if gpu_hour is not None else None,
        "profileHourUsd": {name: round(usd, 4) for name, usd in sheet.profile_hours.items()},
        "missing": sheet.missing,
        "usageBilled": sheet.usage_billed,
        "priceTable": {"version": table.get("version"),
                       "transcribed": (table.get("sources") or {}).get("transcribed")},
    }


__all__ = ["DAYS_PER_MONTH", "EKS_NODE_GROUP_DEFAULT_DISK_GB", "KEDA_DEFAULT_POLLING_SECONDS",
           "LAMBDA_SECONDS_PER_JOB", "NO_CHARGE", "NO_CHARGE_PREFIXES", "PRICED", "SECONDS_PER_SCHEDULED_RUN",
           "USAGE_BILLED", "WEEKS_PER_MONTH", "duration_hours", "estimate", "no_charge", "price_table", "runs_per_month",
           "window_hours_per_week"]
