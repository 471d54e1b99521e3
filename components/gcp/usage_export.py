"""The usage ledger's durable copy: a BigQuery dataset and a table partitioned by day, and a
daily Cloud Scheduler call to the culler's `/export` (functions/culler/export.py), which
copies every ended session from Redis into it. Only the culler's account may write there."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config.budgets import UsageExportConfig

# The export's rows (functions/culler/export.py `row`): one per ended session.
SCHEMA = [
    {"name": "entry_id", "type": "STRING", "mode": "REQUIRED",
     "description": "The usage stream's id of the record (the insert's de-duplication key)."},
    {"name": "identity", "type": "STRING", "mode": "NULLABLE", "description": "The person's identity id."},
    {"name": "email", "type": "STRING", "mode": "NULLABLE", "description": "The person's email."},
    {"name": "game_server", "type": "STRING", "mode": "NULLABLE", "description": "Their game server."},
    {"name": "fleet", "type": "STRING", "mode": "NULLABLE", "description": "Its fleet (one per profile)."},
    {"name": "started_at", "type": "TIMESTAMP", "mode": "NULLABLE", "description": "Session start."},
    {"name": "ended_at", "type": "TIMESTAMP", "mode": "NULLABLE", "description": "Session end."},
    {"name": "seconds", "type": "FLOAT", "mode": "NULLABLE", "description": "Wall-clock seconds."},
    {"name": "gpu_seconds", "type": "FLOAT", "mode": "NULLABLE",
     "description": "GPU-seconds: seconds times the GPUs the pod held."},
    {"name": "reason", "type": "STRING", "mode": "NULLABLE",
     "description": "Why it ended: idle, max-age, budget, switched, admin, orphan, ..."},
    {"name": "budget_group", "type": "STRING", "mode": "NULLABLE",
     "description": "The group whose shared budget it drew on, if any."},
]


def table_id(project: str, prefix: str) -> str:
    """project.dataset.table, as the culler's SDFLEET_USAGE_TABLE names it."""
    return f"{project}.{dataset_id(prefix)}.sessions"


def dataset_id(prefix: str) -> str:
    return f"{prefix.replace('-', '_')}_usage"


@dataclass(frozen=True)
class UsageExportArgs:
    config: UsageExportConfig
    project: str
    region: str
    prefix: str
    labels: dict[str, str]
    culler: pulumi.Resource
    culler_url: pulumi.Input[str]          # the culler's run.app URL (audience and target)
    culler_member: pulumi.Input[str]       # serviceAccount:<culler's account>
    scheduler_email: pulumi.Input[str]     # the account Cloud Scheduler calls it as


class UsageExport(pulumi.ComponentResource):
    """`sdfleet:gcp:UsageExport`: dataset, table, the culler's write access, the daily call."""

    def __init__(self, name: str, args: UsageExportArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:UsageExport", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.dataset = gcp.bigquery.Dataset(
            f"{name}-dataset", dataset_id=dataset_id(args.prefix), project=args.project,
            location=args.region, labels=args.labels,
            description="sdfleet: every ended session (who, which profile, GPU-seconds, why it ended)",
            opts=child)
        self.table = gcp.bigquery.Table(
            f"{name}-sessions", dataset_id=self.dataset.dataset_id, table_id="sessions",
            project=args.project, labels=args.labels, schema=json.dumps(SCHEMA),
            time_partitioning=gcp.bigquery.TableTimePartitioningArgs(type="DAY", field="ended_at"),
            deletion_protection=True, opts=child)
        self.writer = gcp.bigquery.DatasetIamMember(
            f"{name}-culler-writes", dataset_id=self.dataset.dataset_id, project=args.project,
            role="roles/bigquery.dataEditor", member=args.culler_member, opts=child)
        self.schedule = gcp.cloudscheduler.Job(
            f"{name}-schedule", name=f"{name}", region=args.region, project=args.project,
            schedule=args.config.schedule, time_zone="Etc/UTC", attempt_deadline="180s",
            description="Copy ended sessions from Redis to BigQuery",
            retry_config=gcp.cloudscheduler.JobRetryConfigArgs(retry_count=3),
            http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                http_method="POST",
                uri=pulumi.Output.from_input(args.culler_url).apply(lambda u: f"{u}/export"),
                oidc_token=gcp.cloudscheduler.JobHttpTargetOidcTokenArgs(
                    service_account_email=args.scheduler_email, audience=args.culler_url)),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.culler, self.table,
                                                                 self.writer]))
        self.table_ref = pulumi.Output.concat(args.project, ".", self.dataset.dataset_id, ".sessions")
        self.register_outputs({"table": self.table_ref})
