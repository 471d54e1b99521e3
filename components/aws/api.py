"""The job API: API Gateway (REST) with IAM authentication and API keys, in front of the submit Lambda.

Every request is signed with AWS SigV4 (`AWS_IAM`): the caller is an IAM principal allowed
`execute-api:Invoke` on this API (the stack's client policy, `apiClientPolicyArn`), and jobs
belong to that principal. Every request also needs an API key (`x-api-key`), which only
meters: the usage plan throttles each key (rate, burst) and caps it per day, from config. Routes (functions/submit/sdfleet_submit/app.py):
`POST /jobs`, `GET /jobs`, `GET /jobs/{id}`, `POST /uploads`. The Lambda validates a job,
refuses unknown runtimes and models, records it under the caller's key id and publishes it;
it answers a job's status with presigned URLs of its images. Its role may publish to the jobs
topic, write job records and presign init-image uploads under their prefixes, read records,
status and results, and write its own logs; nothing else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.aws.storage import JOBS_PREFIX, RESULTS_PREFIX, UPLOADS_PREFIX
from components.aws.tags import allow, policy_json, tags_for, trust
from components.config import AWS_VISIBILITY_MARGIN_SECONDS, AwsConfig, ModelsConfig
from components.env_names import load_import_free

SUBMIT_DIR = Path(__file__).resolve().parents[2] / "functions" / "submit"
SUBMIT_HANDLER = "handler.handler"


SUBMIT_ENV = load_import_free("functions/submit/sdfleet_submit/env.py")
LAMBDA_RUNTIME = "python3.11"
STAGE = "v1"
JOBS_PATH = "jobs"
UPLOADS_PATH = "uploads"
# SigV4-signed by an IAM principal: the identity (AWS advises against API keys for it).
AUTHORIZATION = "AWS_IAM"
# (method, resource path) of every route; all need an API key.
ROUTES = (("POST", "/jobs"), ("GET", "/jobs"), ("GET", "/jobs/{id}"), ("POST", "/uploads"))
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


def submit_environment(config: AwsConfig, models: ModelsConfig, topic_arn: pulumi.Input[str],
                       bucket: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The variables functions/submit/sdfleet_submit/settings.py reads at cold start."""
    checkpoints = [m.name for m in models.items if m.kind == "checkpoint"]
    env: dict[str, pulumi.Input[str]] = {
        SUBMIT_ENV.JOBS_TOPIC_ARN: topic_arn,
        SUBMIT_ENV.RUNTIMES: ",".join(rt.name for rt in config.runtimes),
        SUBMIT_ENV.RESULTS_BUCKET: bucket,
        SUBMIT_ENV.MAX_WIDTH: str(config.api.max_image_side),
        SUBMIT_ENV.MAX_HEIGHT: str(config.api.max_image_side),
        SUBMIT_ENV.MAX_STEPS: str(config.api.max_steps),
        SUBMIT_ENV.MAX_BATCH_SIZE: str(config.api.max_batch),
        # GET /jobs/{id}: when a running attempt is dead, and when the queue gives up.
        SUBMIT_ENV.ATTEMPT_SECONDS: str(config.jobs.timeout_seconds + AWS_VISIBILITY_MARGIN_SECONDS),
        SUBMIT_ENV.MAX_RECEIVE_COUNT: str(config.jobs.max_receive_count),
    }
    if checkpoints:
        # Jobs name models as the config does; anything else is refused at the API.
        env[SUBMIT_ENV.MODELS] = ",".join(checkpoints)
    if config.api.allowed_image_hosts:
        env[SUBMIT_ENV.ALLOWED_IMAGE_HOSTS] = ",".join(config.api.allowed_image_hosts)
    return env


@dataclass(frozen=True)
class JobApiArgs:
    config: AwsConfig
    models: ModelsConfig
    jobs_topic_arn: pulumi.Input[str]
    results_bucket: pulumi.Input[str]
    results_arn: pulumi.Input[str]
    labels: dict[str, str]


class JobApi(pulumi.ComponentResource):
    """`sdfleet:aws:JobApi`: submit Lambda, REST API, stage, usage plan and API key."""

    def __init__(self, name: str, args: JobApiArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:JobApi", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        function_name = f"{name}-submit"

        # Made before the function, so its logs land in a group with a retention.
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-submit-logs", name=f"/aws/lambda/{function_name}",
            retention_in_days=LOG_RETENTION_DAYS, tags=tags_for(args.labels, function_name), opts=child)
        self.role = aws.iam.Role(
            f"{name}-submit", assume_role_policy=trust("lambda.amazonaws.com"),
            description="sdfleet: submit Lambda", tags=tags_for(args.labels, function_name), opts=child)
        policy = aws.iam.RolePolicy(
            f"{name}-submit", role=self.role.id,
            policy=policy_json([
                allow(["logs:CreateLogStream", "logs:PutLogEvents"],
                      [pulumi.Output.concat(log_group.arn, ":*")]),
                allow(["sns:Publish"], [args.jobs_topic_arn]),
                # Job records, and the presigned PUTs of init images (signed with this role).
                allow(["s3:PutObject"], [pulumi.Output.concat(args.results_arn, f"/{JOBS_PREFIX}*"),
                                         pulumi.Output.concat(args.results_arn,
                                                              f"/{UPLOADS_PREFIX}*")]),
                allow(["s3:DeleteObject"], [pulumi.Output.concat(args.results_arn,
                                                                 f"/{JOBS_PREFIX}*")]),
                # Records, status and results, and the presigned GETs of result images.
                allow(["s3:GetObject"], [pulumi.Output.concat(args.results_arn, f"/{JOBS_PREFIX}*"),
                                         pulumi.Output.concat(args.results_arn,
                                                              f"/{RESULTS_PREFIX}*")]),
                # A client's recent jobs; a missing record reads as 404, not 403.
                allow(["s3:ListBucket"], [args.results_arn]),
            ]),
            opts=child)
        self.function = aws.lambda_.Function(
            function_name, name=function_name, role=self.role.arn, runtime=LAMBDA_RUNTIME,
            handler=SUBMIT_HANDLER, code=submit_archive(), architectures=["x86_64"],
            memory_size=256, timeout=10,
            environment={"variables": submit_environment(args.config, args.models, args.jobs_topic_arn,
                                                         args.results_bucket)},
            logging_config={"log_format": "Text", "log_group": log_group.name},
            tags=tags_for(args.labels, function_name),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy, log_group]))

        self.rest_api = aws.apigateway.RestApi(
            f"{name}-api", name=f"{name}-api", description="sdfleet: submit generation jobs",
            endpoint_configuration={"types": "REGIONAL"},
            api_key_source="HEADER", tags=tags_for(args.labels, f"{name}-api"), opts=child)
        jobs = aws.apigateway.Resource(
            f"{name}-jobs", rest_api=self.rest_api.id, parent_id=self.rest_api.root_resource_id,
            path_part=JOBS_PATH, opts=child)
        job = aws.apigateway.Resource(
            f"{name}-job", rest_api=self.rest_api.id, parent_id=jobs.id, path_part="{id}",
            opts=child)
        uploads = aws.apigateway.Resource(
            f"{name}-uploads", rest_api=self.rest_api.id,
            parent_id=self.rest_api.root_resource_id, path_part=UPLOADS_PATH, opts=child)
        resources = {"/jobs": jobs, "/jobs/{id}": job, "/uploads": uploads}
        self.methods, integrations = [], []
        for method, path in ROUTES:
            key = f"{name}-{path.strip('/').replace('/{id}', '-id')}-{method.lower()}"
            route = aws.apigateway.Method(
                key, rest_api=self.rest_api.id, resource_id=resources[path].id,
                http_method=method, authorization=AUTHORIZATION, api_key_required=True, opts=child)
            integrations.append(aws.apigateway.Integration(
                key, rest_api=self.rest_api.id, resource_id=resources[path].id,
                http_method=route.http_method, type="AWS_PROXY", integration_http_method="POST",
                uri=self.function.invoke_arn, opts=child))
            aws.lambda_.Permission(
                f"{key}-invoke", action="lambda:InvokeFunction", function=self.function.name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(self.rest_api.execution_arn,
                                                f"/*/{method}{path.replace('{id}', '*')}"),
                opts=child)
            self.methods.append(route)
        self.method = self.methods[0]

        # A new deployment whenever the routes change (deployments are immutable snapshots).
        routes = json.dumps({"routes": ROUTES, "apiKey": True, "integration": "AWS_PROXY",
                             "authorization": AUTHORIZATION},
                            sort_keys=True)
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment", rest_api=self.rest_api.id,
            triggers={"routes": hashlib.sha256(routes.encode()).hexdigest()},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.methods, *integrations]))
        self.stage = aws.apigateway.Stage(
            f"{name}-{STAGE}", rest_api=self.rest_api.id, deployment=deployment.id,
            stage_name=STAGE, tags=tags_for(args.labels, f"{name}-{STAGE}"), opts=child)

        self.usage_plan = aws.apigateway.UsagePlan(
            f"{name}-plan", name=f"{name}-plan", description="sdfleet: per-key limits",
            api_stages=[{"api_id": self.rest_api.id, "stage": self.stage.stage_name}],
            throttle_settings={"rate_limit": args.config.api.rate_limit,
                               "burst_limit": args.config.api.burst_limit},
            quota_settings={"limit": args.config.api.quota_per_day, "period": "DAY"},
            tags=tags_for(args.labels, f"{name}-plan"), opts=child)
        self.api_key = aws.apigateway.ApiKey(
            f"{name}-key", name=f"{name}-key", description="sdfleet: first client key",
            enabled=True, tags=tags_for(args.labels, f"{name}-key"), opts=child)
        aws.apigateway.UsagePlanKey(
            f"{name}-key", key_id=self.api_key.id, key_type="API_KEY",
            usage_plan_id=self.usage_plan.id, opts=child)

        # What a client principal needs: invoke this stage's routes, nothing else. Attach it
        # to the users or roles that submit jobs.
        self.client_policy = aws.iam.Policy(
            f"{name}-client", description="sdfleet: submit and read jobs through the job API",
            policy=policy_json([allow(["execute-api:Invoke"], [
                pulumi.Output.concat(self.rest_api.execution_arn,
                                     f"/{STAGE}/{method}{path.replace('{id}', '*')}")
                for method, path in ROUTES])]),
            tags=tags_for(args.labels, f"{name}-client"), opts=child)

        self.url = pulumi.Output.concat(self.stage.invoke_url, f"/{JOBS_PATH}")
        self.base_url = self.stage.invoke_url
        self.register_outputs({"url": self.url})
