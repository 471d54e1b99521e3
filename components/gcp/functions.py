"""The allocator and culler as Cloud Functions (gen2), from `functions/`.

Each function's archive is its folder plus `functions/shared/` as the package `shared` and
`functions/requirements.txt` (the layout functions/README.md documents). The object name
carries a hash of the files, so a code change deploys a new revision and nothing else does.

Both functions accept internal traffic only and run as their own service accounts; the
allocator may be invoked only by the router's account, the culler only by the scheduler's,
which calls the culler's run.app URL (where a scheduler call counts as internal traffic).
They reach Redis and the cluster's private endpoint through a Serverless VPC Access
connector; the Redis AUTH string arrives as a Secret Manager secret, the CA as a mounted file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_gcp as gcp
from pulumi_command import local

from components.config import CullingConfig
from components.config.budgets import UsageExportConfig
from components.config.profiles import Profile
from components.env_names import load_import_free
from components.gcp.cache import RoutingCache
from components.gcp.network import Network
from components.gcp.service_account import ServiceAccount, ServiceAccountArgs, account_id
from components.gcp.usage_export import UsageExport, UsageExportArgs, table_id

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


FUNCTIONS_ENV = load_import_free("functions/shared/env.py")
RUNTIME = "python311"
REDIS_CA_MOUNT = "/etc/sdfleet/redis-ca"
# Google: a grant usually applies within 2 minutes, sometimes 7 or more. A function's build
# starts the moment the function is created, as the build account, and stops on the first
# permission error; so new grants get this long before the first deploy.
IAM_SETTLE_SECONDS = 180
IAM_SETTLE_SCRIPT = (
    'echo "sdfleet: waiting $SDFLEET_SETTLE_SECONDS s for the function build account\'s new IAM '
    'grants to apply before the first function deploy (only when the grants change)"\n'
    'sleep "$SDFLEET_SETTLE_SECONDS"\n')


def _source_files(name: str) -> dict[str, Path]:
    """Archive path -> file, for one function (tests and caches left out)."""
    files: dict[str, Path] = {}
    for folder, prefix in ((FUNCTIONS_DIR / name, ""), (FUNCTIONS_DIR / "shared", "shared/")):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files[prefix + path.relative_to(folder).as_posix()] = path
    files["requirements.txt"] = FUNCTIONS_DIR / "requirements.txt"
    return files


def source_archive(name: str) -> tuple[pulumi.AssetArchive, str]:
    """The function's archive and a short hash of its content."""
    files = _source_files(name)
    digest = hashlib.sha256()
    for arc, path in files.items():
        digest.update(arc.encode() + b"\0" + path.read_bytes() + b"\0")
    archive = pulumi.AssetArchive({arc: pulumi.FileAsset(str(path)) for arc, path in files.items()})
    return archive, digest.hexdigest()[:12]


@dataclass(frozen=True)
class FunctionSettings:
    """What both functions need to know about the platform (plain values or outputs)."""

    fleet_name: str
    fleet_namespace: str
    cluster_endpoint: pulumi.Input[str]
    cluster_ca: pulumi.Input[str]
    iap_audience: pulumi.Input[str]
    gpus_per_pod: float = 1.0  # usage is counted in GPU-seconds
    # The profiles as the functions read them (profile_records); None: the implicit profile
    # only, named by fleet_name.
    profiles: Optional[list[dict]] = None
    # GPU-hour budgets as the allocator reads them (budget_records); None: no caps.
    budgets: Optional[dict] = None
    # Who may see and end sessions (access.admins).
    admins: tuple[str, ...] = ()
    # The usage export (usageExport), and the prefix its dataset is named by.
    usage_export: Optional[UsageExportConfig] = None
    prefix: str = "sdfleet"


def profile_records(profiles: list[Profile], fleet_names: dict[str, str], platform,
                    region: str) -> list[dict]:
    """What the allocator and culler know of each profile (docs/contracts.md, "Profiles")."""
    from components.registries.accelerators import GCE_ACCELERATORS
    from components.registries.frameworks import FRAMEWORKS
    records = []
    for profile in profiles:
        pool = platform.gpu_pool(profile.gpu_pool)
        accelerator = GCE_ACCELERATORS.get(pool.accelerator)
        records.append({
            "name": profile.name, "displayName": profile.display_name,
            "description": profile.description, "framework": profile.framework,
            "frameworkLabel": FRAMEWORKS[profile.framework].label,
            "gpu": accelerator.label if accelerator else pool.accelerator,
            "region": region, "fleet": fleet_names[profile.name],
            "access": list(profile.access) if profile.access is not None else None,
            "maxSessions": profile.max_sessions, "gpusPerPod": pool.gpus_per_pod,
            "default": profile.default})
    return records


def uses_groups(profiles: list[Profile]) -> bool:
    """Whether any profile admits by group (the allocator then asks Cloud Identity)."""
    return any(m.startswith("group:") for p in profiles for m in (p.access or ()))


@dataclass(frozen=True)
class ControlFunctionsArgs:
    project: str
    project_number: pulumi.Input[str]
    region: str
    network: Network
    connector_cidr: str
    cache: RoutingCache
    culling: CullingConfig
    settings: FunctionSettings
    router_member: pulumi.Input[str]
    labels: dict[str, str]


class ControlFunctions(pulumi.ComponentResource):
    """`sdfleet:gcp:ControlFunctions`: allocator + culler + scheduler, and their identities."""

    def __init__(self, name: str, args: ControlFunctionsArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:ControlFunctions", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.project, self.region, self.labels = args.project, args.region, args.labels
        self.project_number = pulumi.Output.from_input(args.project_number)

        self.connector = gcp.vpcaccess.Connector(
            f"{name}-connector", name=f"{name[:15]}-vpc"[:25], region=args.region,
            # The VPC's name as an output of the VPC, so the connector waits for it.
            network=args.network.vpc.out("name"), ip_cidr_range=args.connector_cidr, machine_type="e2-micro",
            min_instances=2, max_instances=3, opts=child)
        self.source_bucket = gcp.storage.Bucket(
            f"{name}-sources", name=f"{args.project}-{name}-sources", location=args.region,
            uniform_bucket_level_access=True, public_access_prevention="enforced",
            force_destroy=True, labels=args.labels,
            lifecycle_rules=[gcp.storage.BucketLifecycleRuleArgs(
                action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                condition=gcp.storage.BucketLifecycleRuleConditionArgs(num_newer_versions=3))],
            opts=child)
        # Builds run as their own account, with what a gen2 build needs (Cloud Run docs,
        # "Configure the build service account": logs writer, Artifact Registry writer, and
        # Storage Object Admin on the function sources: the build reads the source and writes
        # its own objects beside it). A gen2 deploy copies the source
        # into the Google-made bucket `gcf-v2-sources-<number>-<region>` and pushes the image
        # to the Google-made repository `gcf-artifacts` (Cloud Functions docs, "Custom service
        # account for Cloud Build"); neither exists before the first deploy, so the grants are
        # project-level with IAM conditions on those names, not project-wide.
        self.build_account = ServiceAccount(f"{name}-build", ServiceAccountArgs(
                account_id(name, "fn-build"), "sdfleet function builds",
                args.project, ("roles/logging.logWriter",)),
                opts=child)
        self.build_grants = [
            *self.build_account.bindings,
            gcp.storage.BucketIAMMember(
                f"{name}-build-reads-sources", bucket=self.source_bucket.name,
                role="roles/storage.objectAdmin", member=self.build_account.member, opts=child),
            gcp.projects.IAMMember(
                f"{name}-build-reads-gcf-sources", project=args.project,
                role="roles/storage.objectAdmin", member=self.build_account.member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="gcf-v2-sources buckets only",
                    expression='resource.name.startsWith("projects/_/buckets/gcf-v2-sources-")'),
                opts=child),
            gcp.projects.IAMMember(
                f"{name}-build-pushes-gcf-artifacts", project=args.project,
                role="roles/artifactregistry.writer", member=self.build_account.member,
                condition=gcp.projects.IAMMemberConditionArgs(
                    title="gcf-artifacts repository only",
                    expression=f'resource.name.startsWith("projects/{args.project}/locations/'
                               f'{args.region}/repositories/gcf-artifacts")'),
                opts=child),
        ]

        # Runs once per set of grants (a replaced grant has a new id and waits again).
        self.iam_settle = local.Command(
            f"{name}-iam-settle", create=IAM_SETTLE_SCRIPT, logging="stdoutAndStderr",
            environment={"SDFLEET_SETTLE_SECONDS": str(IAM_SETTLE_SECONDS)},
            triggers=[grant.id for grant in self.build_grants],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.build_grants))

        # Runtime identities: authenticate to GKE (RBAC in the fleet namespace does the rest).
        self.allocator_account = ServiceAccount(f"{name}-allocator", ServiceAccountArgs(
                account_id(name, "allocator"), "sdfleet allocator function",
                args.project, ("roles/container.clusterViewer",)),
                opts=child)
        self.culler_account = ServiceAccount(f"{name}-culler", ServiceAccountArgs(
                account_id(name, "culler"), "sdfleet culler function",
                args.project, ("roles/container.clusterViewer",)),
                opts=child)
        self.scheduler_account = ServiceAccount(f"{name}-scheduler", ServiceAccountArgs(
                account_id(name, "cull-scheduler"), "sdfleet culler schedule (OIDC caller)",
                args.project, ()),
                opts=child)
        args.cache.grant_access(f"{name}-allocator", self.allocator_account.member)
        args.cache.grant_access(f"{name}-culler", self.culler_account.member)

        common_env = {
            FUNCTIONS_ENV.REDIS_HOST: args.cache.host,
            FUNCTIONS_ENV.REDIS_PORT: args.cache.port.apply(str),
            FUNCTIONS_ENV.REDIS_TLS: "true",
            FUNCTIONS_ENV.REDIS_CA_FILE: f"{REDIS_CA_MOUNT}/ca.pem",
            FUNCTIONS_ENV.REDIS_PREFIX: "sdfleet:",
            FUNCTIONS_ENV.K8S_API_URL: pulumi.Output.from_input(args.settings.cluster_endpoint).apply(
                lambda e: f"https://{e}"),
            FUNCTIONS_ENV.K8S_CA_DATA: args.settings.cluster_ca,
            FUNCTIONS_ENV.AGONES_NAMESPACE: args.settings.fleet_namespace,
            FUNCTIONS_ENV.FLEET_NAME: args.settings.fleet_name,
            FUNCTIONS_ENV.IAP_AUDIENCE: args.settings.iap_audience,
            FUNCTIONS_ENV.IDLE_TIMEOUT_SECONDS: str(args.culling.idle_minutes * 60),
            FUNCTIONS_ENV.MAX_SESSION_SECONDS: str(args.culling.max_session_hours * 3600),
            FUNCTIONS_ENV.ORPHAN_GRACE_SECONDS: str(args.culling.orphan_grace_minutes * 60),
            FUNCTIONS_ENV.GPUS_PER_POD: repr(args.settings.gpus_per_pod),
        }
        if args.settings.profiles is not None:
            common_env[FUNCTIONS_ENV.PROFILES] = json.dumps(args.settings.profiles,
                                                            separators=(",", ":"))
        if args.settings.admins:
            common_env[FUNCTIONS_ENV.ADMINS] = json.dumps(list(args.settings.admins))
        if args.settings.budgets is not None:
            common_env[FUNCTIONS_ENV.BUDGETS] = json.dumps(args.settings.budgets,
                                                           separators=(",", ":"))
        self.allocator = self._function(
            f"{name}-allocator", "allocator", "allocate", self.allocator_account, args.cache,
            common_env, min_instances=1, timeout=60)
        exporting = args.settings.usage_export is not None and args.settings.usage_export.enabled
        culler_env = {**common_env, FUNCTIONS_ENV.CULL_INVOKER_EMAILS: self.scheduler_account.email}
        if exporting:
            culler_env[FUNCTIONS_ENV.USAGE_TABLE] = table_id(args.project, args.settings.prefix)
        self.culler = self._function(
            f"{name}-culler", "culler", "cull", self.culler_account, args.cache,
            culler_env, min_instances=0, timeout=120, audience_env=FUNCTIONS_ENV.CULL_INVOKER_AUDIENCE)

        # gen2 functions are Cloud Run services: invoking them is run.invoker on the service.
        self._invoker(f"{name}-router-invokes-allocator", self.allocator, args.router_member)
        self._invoker(f"{name}-scheduler-invokes-culler", self.culler, self.scheduler_account.member)

        self.cull_schedule = gcp.cloudscheduler.Job(
            f"{name}-cull-schedule", name=f"{name}-cull", region=args.region, project=args.project,
            schedule=args.culling.schedule, time_zone="Etc/UTC", attempt_deadline="180s",
            description="One culling pass: idle and over-age sessions, stale mappings, orphans",
            retry_config=gcp.cloudscheduler.JobRetryConfigArgs(retry_count=0),
            http_target=gcp.cloudscheduler.JobHttpTargetArgs(
                http_method="POST", uri=self.service_url(f"{name}-culler").apply(lambda u: f"{u}/cull"),
                oidc_token=gcp.cloudscheduler.JobHttpTargetOidcTokenArgs(
                    service_account_email=self.scheduler_account.email,
                    audience=self.service_url(f"{name}-culler"))),
            # No call before the culler exists (and its caller may invoke it).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.culler]))

        self.usage_export = UsageExport(f"{name}-usage-export", UsageExportArgs(
            config=args.settings.usage_export, project=args.project, region=args.region,
            prefix=args.settings.prefix, labels=args.labels, culler=self.culler,
            culler_url=self.service_url(f"{name}-culler"),
            culler_member=self.culler_account.member,
            scheduler_email=self.scheduler_account.email), opts=child) if exporting else None

        self.allocator_url = self.allocator.url
        self.register_outputs({"allocatorUrl": self.allocator.url, "cullerUrl": self.culler.url})

    def _function(self, name: str, folder: str, entry_point: str, account: ServiceAccount,
                  cache: RoutingCache, env: dict, *, min_instances: int, timeout: int,
                  audience_env: str | None = None) -> gcp.cloudfunctionsv2.Function:
        child = pulumi.ResourceOptions(parent=self)
        archive, digest = source_archive(folder)
        source = gcp.storage.BucketObject(
            f"{name}-source", bucket=self.source_bucket.name, name=f"{folder}-{digest}.zip",
            source=archive, opts=child)
        env = dict(env)
        if audience_env:
            # The culler checks the scheduler's OIDC audience against its own URL; a
            # function's URL is known only after it exists, so it is computed from the name.
            env[audience_env] = self.service_url(name)
        return gcp.cloudfunctionsv2.Function(
            name, name=name, location=self.region, project=self.project, labels=self.labels,
            description=f"sdfleet {folder}",
            build_config=gcp.cloudfunctionsv2.FunctionBuildConfigArgs(
                runtime=RUNTIME, entry_point=entry_point,
                service_account=self.build_account.account.id,
                source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceArgs(
                    storage_source=gcp.cloudfunctionsv2.FunctionBuildConfigSourceStorageSourceArgs(
                        bucket=self.source_bucket.name, object=source.name))),
            service_config=gcp.cloudfunctionsv2.FunctionServiceConfigArgs(
                ingress_settings="ALLOW_INTERNAL_ONLY",
                all_traffic_on_latest_revision=True,
                service_account_email=account.email,
                min_instance_count=min_instances, max_instance_count=20,
                available_memory="512M", timeout_seconds=timeout,
                vpc_connector=self.connector.id,
                vpc_connector_egress_settings="PRIVATE_RANGES_ONLY",
                environment_variables=env,
                secret_environment_variables=[
                    gcp.cloudfunctionsv2.FunctionServiceConfigSecretEnvironmentVariableArgs(
                        key=FUNCTIONS_ENV.REDIS_PASSWORD, project_id=self.project,
                        secret=cache.auth_secret.secret_id, version="latest")],
                secret_volumes=[gcp.cloudfunctionsv2.FunctionServiceConfigSecretVolumeArgs(
                    mount_path=REDIS_CA_MOUNT, project_id=self.project,
                    secret=cache.ca_secret.secret_id,
                    versions=[gcp.cloudfunctionsv2.FunctionServiceConfigSecretVolumeVersionArgs(
                        path="ca.pem", version="latest")])]),
            # The build runs as build_account: its roles must apply before the first build.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.build_grants, self.iam_settle]))

    def service_url(self, name: str) -> pulumi.Output[str]:
        """The deterministic run.app URL of a gen2 function's Cloud Run service.

        The scheduler calls this URL, not the cloudfunctions.net one: Cloud Run counts a
        Cloud Scheduler call as internal only on the service's own run.app URL, and the
        function takes internal traffic only (docs/decisions/2026-12-culler-trigger.md).
        """
        return self.project_number.apply(
            lambda number: f"https://{name}-{number}.{self.region}.run.app")

    def _invoker(self, name: str, function: gcp.cloudfunctionsv2.Function,
                 member: pulumi.Input[str]) -> None:
        gcp.cloudrunv2.ServiceIamMember(
            name, project=self.project, location=self.region, name=function.name,
            role="roles/run.invoker", member=member, opts=pulumi.ResourceOptions(parent=self))
