"""The job API: API Gateway (REST) with API keys and a usage plan, in front of the submit Lambda.

Every request needs an API key (`x-api-key`); the usage plan throttles each key (rate, burst)
and caps it per day, all from config. The Lambda (functions/submit) validates the job,
refuses unknown runtimes and publishes it to the jobs topic: its role may publish to that
topic and write its own logs, nothing else.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.aws.tags import allow, policy_json, tags_for, trust
from components.config import AwsConfig

SUBMIT_DIR = Path(__file__).resolve().parents[2] / "functions" / "submit"
SUBMIT_HANDLER = "handler.handler"
LAMBDA_RUNTIME = "python3.11"
STAGE = "v1"
JOBS_PATH = "jobs"
LOG_RETENTION_DAYS = 30


def _deploys_for_real() -> bool:
    """`pulumi up` against a real engine (not a preview, not the offline mock engine)."""
    from pulumi.runtime import mocks, settings
    return (not pulumi.runtime.is_dry_run()
            and not isinstance(settings.SETTINGS.monitor, mocks.MockMonitor))


def submit_archive(source: Path = SUBMIT_DIR) -> pulumi.AssetArchive:
    """The Lambda's code: the entry point, its package and, at the archive's root, whatever
    the build vendored into `<source>/vendor/` (`pip install --target`, functions/submit/
    requirements.txt: pydantic is not in the Lambda runtime)."""
    parts: dict[str, pulumi.Asset | pulumi.Archive] = {
        "handler.py": pulumi.FileAsset(str(source / "handler.py")),
        "sdfleet_submit": pulumi.FileArchive(str(source / "sdfleet_submit")),
    }
    vendor = source / "vendor"
    if not vendor.is_dir():
        message = (f"{vendor} is missing: the submit Lambda needs its dependencies vendored "
                   "(pydantic is not in the Lambda runtime). Run `make lambda` first.")
        if _deploys_for_real():
            # Never deploy a function that fails at cold start.
            raise pulumi.RunError(message)
        pulumi.log.warn(message)
    if vendor.is_dir():
        for entry in sorted(vendor.iterdir()):
            parts[entry.name] = (pulumi.FileArchive(str(entry)) if entry.is_dir()
                                 else pulumi.FileAsset(str(entry)))
    return pulumi.AssetArchive(parts)


def submit_environment(config: AwsConfig, topic_arn: pulumi.Input[str],
                       bucket: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The variables functions/submit/sdfleet_submit/settings.py reads at cold start."""
    env: dict[str, pulumi.Input[str]] = {
        "JOBS_TOPIC_ARN": topic_arn,
        "RUNTIMES": ",".join(rt.name for rt in config.runtimes),
        "RESULTS_BUCKET": bucket,
        "MAX_WIDTH": str(config.max_image_side),
        "MAX_HEIGHT": str(config.max_image_side),
        "MAX_STEPS": str(config.max_steps),
        "MAX_BATCH_SIZE": str(config.max_batch),
    }
    if config.allowed_image_hosts:
        env["ALLOWED_IMAGE_HOSTS"] = ",".join(config.allowed_image_hosts)
    return env


class JobApi(pulumi.ComponentResource):
    """`sdfleet:aws:JobApi`: submit Lambda, REST API, stage, usage plan and API key."""

    def __init__(self, name: str, config: AwsConfig, region: str,
                 jobs_topic_arn: pulumi.Input[str], results_bucket: pulumi.Input[str],
                 labels: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:JobApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}-submit"

        # Made before the function, so its logs land in a group with a retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-submit-logs", name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS, tags=tags_for(labels, function_name), opts=child)
        self.role = aws.iam.Role(
            f"{name}-submit", assume_role_policy=trust("lambda.amazonaws.com"),
            description="sdfleet: submit Lambda", tags=tags_for(labels, function_name), opts=child)
        policy = aws.iam.RolePolicy(
            f"{name}-submit", role=self.role.id,
            policy=policy_json([
                allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                      [pulumi.Output.concat(log_group.arn, ":*")]),
                allow(["sns:Publish"], [jobs_topic_arn]),
            ]),
            opts=child)
        self.function = aws.lambda_.Function(
            function_name, name=function_name, role=self.role.arn, runtime=LAMBDA_RUNTIME,
            handler=SUBMIT_HANDLER, code=submit_archive(), architectures=["x86_64"],
            memory_size=256, timeout=10,
            environment={"variables": submit_environment(config, jobs_topic_arn, results_bucket)},
            logging_config={"log_format": "Text", "log_group": log_group.name},
            tags=tags_for(labels, function_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]))

        self.rest_api = aws.apigateway.RestApi(
            f"{name}-api", name=f"{name}-api", description="sdfleet: submit generation jobs",
            endpoint_configuration={"types": "REGIONAL"},
            api_key_source="HEADER", tags=tags_for(labels, f"{name}-api"), opts=child)
        jobs = aws.apigateway.Resource(
            f"{name}-jobs", rest_api=self.rest_api.id, parent_id=self.rest_api.root_resource_id,
            path_part=JOBS_PATH, opts=child)
        self.method = aws.apigateway.Method(
            f"{name}-jobs-post", rest_api=self.rest_api.id, resource_id=jobs.id,
            http_method="POST", authorization="NONE", api_key_required=True, opts=child)
        integration = aws.apigateway.Integration(
            f"{name}-jobs-post", rest_api=self.rest_api.id, resource_id=jobs.id,
            http_method=self.method.http_method, type="AWS_PROXY", integration_http_method="POST",
            uri=self.function.invoke_arn, opts=child)
        aws.lambda_.Permission(
            f"{name}-invoke", action="lambda:InvokeFunction", function=self.function.name,
            principal="apigateway.amazonaws.com",
            source_arn=pulumi.Output.concat(self.rest_api.execution_arn, f"/*/POST/{JOBS_PATH}"),
            opts=child)

        # A new deployment whenever the routes change (deployments are immutable snapshots).
        routes = json.dumps({"path": JOBS_PATH, "method": "POST", "apiKey": True,
                             "integration": "AWS_PROXY"}, sort_keys=True)
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment", rest_api=self.rest_api.id,
            triggers={"routes": hashlib.sha256(routes.encode()).hexdigest()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.method, integration]))
        self.stage = aws.apigateway.Stage(
            f"{name}-{STAGE}", rest_api=self.rest_api.id, deployment=deployment.id,
            stage_name=STAGE, tags=tags_for(labels, f"{name}-{STAGE}"), opts=child)

        self.usage_plan = aws.apigateway.UsagePlan(
            f"{name}-plan", name=f"{name}-plan", description="sdfleet: per-key limits",
            api_stages=[{"api_id": self.rest_api.id, "stage": self.stage.stage_name}],
            throttle_settings={"rate_limit": config.api_rate_limit,
                               "burst_limit": config.api_burst_limit},
            quota_settings={"limit": config.api_quota_per_day, "period": "DAY"},
            tags=tags_for(labels, f"{name}-plan"), opts=child)
        self.api_key = aws.apigateway.ApiKey(
            f"{name}-key", name=f"{name}-key", description="sdfleet: first client key",
            enabled=True, tags=tags_for(labels, f"{name}-key"), opts=child)
        aws.apigateway.UsagePlanKey(
            f"{name}-key", key_id=self.api_key.id, key_type="API_KEY",
            usage_plan_id=self.usage_plan.id, opts=child)

        self.url = pulumi.Output.concat(self.stage.invoke_url, f"/{JOBS_PATH}")
        self.register_outputs({"url": self.url})
