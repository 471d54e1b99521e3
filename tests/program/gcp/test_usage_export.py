"""The usage export in the plan: Pulumi.dev.yaml turns it on; the dataset, the day-partitioned
table with the schema the culler's rows fill, the culler's write access (and nobody else's),
the daily call to the culler's /export as the scheduler's account, and the table the culler
is told about; off by default."""

from __future__ import annotations

import json

from components.gcp.usage_export import SCHEMA


def test_the_dev_stack_exports_usage_to_a_day_partitioned_table(plan, profiles_config):
    result = plan(profiles_config, preview=False)
    table = result.one("gcp:bigquery/table:Table", "usage-export").inputs
    assert table["timePartitioning"] == {"type": "DAY", "field": "ended_at"}
    assert json.loads(table["schema"]) == SCHEMA
    dataset = result.one("gcp:bigquery/dataset:Dataset", "usage-export").inputs
    assert dataset["datasetId"] == "sdfleet_usage" and dataset["location"] == "us-central1"
    grants = [r.inputs for r in result.of_type("gcp:bigquery/datasetIamMember:DatasetIamMember")]
    assert len(grants) == 1 and grants[0]["role"] == "roles/bigquery.dataEditor"
    culler_account = result.one("gcp:serviceaccount/account:Account", "fn-culler").inputs
    assert culler_account["accountId"] in grants[0]["member"]
    job = result.one("gcp:cloudscheduler/job:Job", "usage-export").inputs
    assert job["httpTarget"]["uri"].endswith(".run.app/export")
    assert job["httpTarget"]["oidcToken"]["audience"] + "/export" == job["httpTarget"]["uri"]
    culler = result.one("gcp:cloudfunctionsv2/function:Function", "fn-culler").inputs
    env = culler["serviceConfig"]["environmentVariables"]
    assert env["SDFLEET_USAGE_TABLE"] == "example-sdfleet-project.sdfleet_usage.sessions"
    assert result.outputs["usageTable"] == env["SDFLEET_USAGE_TABLE"]


def test_off_by_default(plan, dev_config):
    result = plan(dev_config, preview=True)
    assert result.of_type("gcp:bigquery/table:Table") == []
