"""The whole stack config, typed: one structured key, `sdfleet:platform`.

Pulumi stack files hold it as YAML under `sdfleet:platform`; provider keys stay where Pulumi
users expect them (`gcp:project`, `gcp:region`, `aws:region`) and secrets are separate keys read
as Pulumi secrets (`sdfleet:civitaiToken`, `sdfleet:huggingfaceToken`), never fields here.

Validation happens before any resource is registered, and nothing downstream (the
components, tools/cost.py) re-checks or sees an unvalidated value:

0. the stack file itself (`read_stack_yaml`, `secret_key_problems`): a key given twice, a
   plaintext value in a secret key (`sdfleet:*Token`, `*Secret`, `*Password`);
1. structure and types (pydantic, `extra="forbid"`, strict: `true` is not 1, "6" is not 6):
   unknown keys, wrong types, out-of-range numbers, values outside an allowed set, and the
   single-value rules (cron, time zone, machine type, image reference, image host, model
   URL without credentials, paths without '..');
2. cross-field rules (`cross_field_problems`): min <= max, accelerator vs machine family,
   non-overlapping CIDRs, zones inside the region, names that refer to other entries,
   sections of the other cloud...

Each problem becomes one line naming the key path (`sdfleet:platform.gpuPools[0].accelerator`),
the bad value and what is allowed (`ConfigError.lines`).

Each component takes its own section model as its args (`GpuPoolConfig` for a GPU node pool,
`CacheConfig` for Memorystore, ...), so a component never reads raw config.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError,
                      field_validator, model_validator)
from pydantic.alias_generators import to_camel

CONFIG_KEY = "sdfleet:platform"

# Secrets live in their own keys, read with `pulumi.Config("sdfleet").get_secret(...)`.
SECRET_KEYS = {
    "civitaiToken": "CivitAI API token for the model fetcher",
    "huggingfaceToken": "Hugging Face token for gated models",
    "iapOauthClientSecret": "secret of the custom OAuth client IAP uses (access.oauthClientId)",
}


class Section(BaseModel):
    """Base of every config section: camelCase keys, unknown keys refused, immutable."""

    # strict: YAML and JSON give real ints and booleans; `maxNodes: true` or `spot: "yes"`
    # is a mistake to report, never a value to coerce (true would become 1).
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True,
                              frozen=True, validate_default=True, strict=True)


def _cidr(value: str) -> str:
    try:
        net = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not a CIDR block with its host bits zero, e.g. 10.0.0.0/20 ({exc})") from None
    if net.version != 4:
        raise ValueError("only IPv4 CIDR blocks are supported")
    return value


Cidr = Annotated[str, AfterValidator(_cidr)]
DnsLabel = Annotated[str, Field(pattern=r"^[a-z]([-a-z0-9]{0,28}[a-z0-9])?$")]
Quantity = Annotated[str, Field(pattern=r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti)?$")]

# --- Single-value rules ------------------------------------------------------------------------
# Each rule is defined once here and attached to every field it applies to, so no later
# consumer (the components, tools/cost.py) ever sees a value that did not pass it.

# Five-field unix-cron, what both consumers accept: Cloud Scheduler ("Configure cron job
# schedules", cloud.google.com/scheduler/docs/configuring/cron-job-schedules) and Agones
# scheduled autoscaling (pkg/apis/autoscaling/v1/fleetautoscaler.go, ValidateSchedulePolicy:
# `cron.ParseStandard(startCron)` of robfig/cron v3, whose day-of-week bounds are 0-6, and no
# "TZ" in the expression: the time zone is its own field). Descriptors such as @hourly are
# not unix-cron and are refused. Month and day names are accepted.
CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12),
               ("day of week", 0, 6))
_CRON_NAMES = {
    "month": {m: i + 1 for i, m in enumerate(
        "jan feb mar apr may jun jul aug sep oct nov dec".split())},
    "day of week": {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())},
}


def _cron_value(token: str, name: str, lo: int, hi: int) -> int:
    names = _CRON_NAMES.get(name, {})
    if token.lower() in names:
        return names[token.lower()]
    if not token.isdigit():
        raise ValueError(f"{name} {token!r} is not a number"
                         + (f" or a name ({', '.join(names)})" if names else ""))
    value = int(token)
    if not lo <= value <= hi:
        raise ValueError(f"{name} {value} is outside {lo}-{hi}")
    return value


def _cron(value: str) -> str:
    """A 5-field unix-cron expression whose every value is in range (`61 25 * * 9` is not)."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError("not a cron expression: it needs 5 fields (minute hour day-of-month "
                         "month day-of-week), e.g. '* * * * *' or '0 8 * * 1-5'")
    for text, (name, lo, hi) in zip(fields, CRON_FIELDS):
        for item in text.split(","):
            base, _, step = item.partition("/")
            if step and (not step.isdigit() or int(step) < 1):
                raise ValueError(f"{name} step {step!r} must be a whole number >= 1")
            if base == "*":
                continue
            first, dash, last = base.partition("-")
            a = _cron_value(first, name, lo, hi)
            if dash:
                b = _cron_value(last, name, lo, hi)
                if a > b:
                    raise ValueError(f"{name} range {base!r} runs backwards")
            elif step:
                raise ValueError(f"{name} {item!r}: a step needs '*' or a range before it")
    return value


@functools.lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    # The IANA zone list of the pinned `tzdata` package, not the machine's /usr/share/zoneinfo
    # (which also holds `localtime`, `posixrules`...): the same answer on every machine.
    from importlib.resources import files

    return frozenset(files("tzdata").joinpath("zones").read_text().split())


def _timezone(value: str) -> str:
    """An IANA time zone name (Agones ValidateSchedulePolicy loads it with Go's
    time.LoadLocation)."""
    if value not in _iana_zones():
        raise ValueError("not an IANA time zone name, e.g. Etc/UTC, Europe/Berlin, "
                         "America/New_York")
    return value


# GCE machine families (Compute Engine docs, "Machine families resource and comparison
# guide", cloud.google.com/compute/docs/machine-resource). A machine type is
# `<family>-<shape>`, e.g. g2-standard-8, e2-standard-4, n1-highmem-8.
GCE_MACHINE_FAMILIES = ("e2", "n1", "n2", "n2d", "n4", "n4d", "c2", "c2d", "c3", "c3d", "c4",
                        "c4a", "c4d", "t2a", "t2d", "m1", "m2", "m3", "m4", "x4", "z3", "h3",
                        "a2", "a3", "a4", "g2", "g4", "f1", "g1",
                        "custom")   # custom-<cpus>-<mb>: an N1 custom machine type


def _gce_machine_type(value: str) -> str:
    family, dash, shape = value.partition("-")
    if not dash or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", shape):
        raise ValueError("a GCE machine type looks like <family>-<shape>, e.g. g2-standard-8")
    if family not in GCE_MACHINE_FAMILIES:
        raise ValueError(f"unknown machine family {family!r}; known: "
                         f"{', '.join(GCE_MACHINE_FAMILIES)}")
    return value


def _ec2_instance_type(value: str) -> str:
    # EC2 instance types are `<family><generation><attributes>.<size>` (EC2 docs, "Amazon EC2
    # instance type naming conventions").
    if not re.fullmatch(r"[a-z]+[0-9][a-z0-9-]*\.[0-9]*[a-z0-9]+", value):
        raise ValueError("an EC2 instance type looks like <family>.<size>, e.g. m6i.large")
    return value


# An image reference, by the grammar of distribution/reference (reference.go's doc comment:
# [domain[:port]/]path-component[/path-component...][:tag][@digest]). Never spaces.
_REF_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REF_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?)"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_REF_DOMAIN}/)?{_REF_COMPONENT}(?:/{_REF_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")


def _image_reference(value: str) -> str:
    if len(value) > 255 or not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError("not an image reference: [registry[:port]/]path[:tag][@sha256:<hex>], "
                         "lowercase path, no spaces, e.g. us-docker.pkg.dev/p/repo/webui:v1")
    return value


_HOSTNAME = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _image_host(value: str) -> str:
    """A host the batch API may fetch init images from: compared with the URL's hostname
    (functions/submit/sdfleet_submit/job.py), so a bare lowercase DNS name, never a wildcard,
    scheme, port or path."""
    if not _HOSTNAME.fullmatch(value) or len(value) > 253:
        raise ValueError("a bare lowercase host name, e.g. images.example.com; no '*', no "
                         "scheme (http://, https://), no port or path")
    return value


# Query parameter names that carry credentials in download links (Hugging Face, CivitAI,
# S3/GCS presigned URLs, generic API keys).
_CREDENTIAL_PARAMS = re.compile(
    r"(token|access_token|api_key|apikey|key|secret|password|passwd|auth|authorization|sig|"
    r"signature|credential|x-amz-signature|x-amz-credential|x-amz-security-token|"
    r"x-goog-signature|x-goog-credential)", re.IGNORECASE)


def _download_url(value: str) -> str:
    """A model URL: https, and no credential in it (it is written into a ConfigMap)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or re.search(r"\s", value):
        raise ValueError("an https:// URL without spaces")
    secret_hint = ("put the token in the secret key sdfleet:civitaiToken or "
                   "sdfleet:huggingfaceToken (`pulumi config set --secret`); model URLs are "
                   "written into a ConfigMap")
    if "@" in parts.netloc:
        raise ValueError(f"the URL carries user credentials; {secret_hint}")
    for name, param in parse_qsl(parts.query, keep_blank_values=True):
        if _CREDENTIAL_PARAMS.fullmatch(name) or param.startswith("hf_"):
            raise ValueError(f"the URL carries a credential ({name}=...); {secret_hint}")
    return value


def _relative_path(value: str) -> str:
    """A path inside a repository: relative, no '.'/'..' segments, no backslashes."""
    segments = value.split("/")
    if (not value or value.startswith("/") or "\\" in value or re.search(r"\s", value)
            or any(seg in ("", ".", "..") for seg in segments)):
        raise ValueError("a relative path inside the repository (e.g. sd_xl_base_1.0.safetensors "
                         "or vae/diffusion.safetensors): no leading '/', no '.' or '..' "
                         "segments, no backslashes or spaces")
    return value


def _hf_repo_id(value: str) -> str:
    # huggingface_hub's validate_repo_id (utils/_validators.py): `[namespace/]name` of
    # [\w.-], at most 96 characters per part, and never '--' or '..' anywhere.
    if (not re.fullmatch(r"[\w.-]{1,96}/[\w.-]{1,96}", value, re.ASCII) or ".." in value
            or "--" in value or value.endswith(".git")
            or any(part in (".", "..") or part.startswith(("-", ".")) for part in value.split("/"))):
        raise ValueError("a Hugging Face repo id <owner>/<name> (letters, digits, '_', '-', "
                         "'.'; no '..' or '--'), e.g. stabilityai/stable-diffusion-xl-base-1.0")
    return value


def _revision(value: str) -> str:
    if not re.fullmatch(r"[\w][\w.\-/]{0,127}", value, re.ASCII) or ".." in value:
        raise ValueError("a branch, tag or commit (letters, digits, '_', '-', '.', '/'; no '..')")
    return value


def _gpu_count(value: int) -> int:
    if value not in (1, 2, 4, 8):
        raise ValueError("GPUs per node come in 1, 2, 4 or 8")
    return value


Cron = Annotated[str, AfterValidator(_cron)]
Timezone = Annotated[str, AfterValidator(_timezone)]
GceMachineType = Annotated[str, AfterValidator(_gce_machine_type)]
Ec2InstanceType = Annotated[str, AfterValidator(_ec2_instance_type)]
ImageReference = Annotated[str, AfterValidator(_image_reference)]
ImageHost = Annotated[str, AfterValidator(_image_host)]

# --- GPUs -------------------------------------------------------------------------------------

# Which machine family each accelerator attaches to (GCE docs, "GPU platforms").
ACCELERATOR_FAMILIES: dict[str, tuple[str, ...]] = {
    "nvidia-l4": ("g2",),
    "nvidia-tesla-t4": ("n1",),
    "nvidia-tesla-v100": ("n1",),
    "nvidia-tesla-p4": ("n1",),
    "nvidia-tesla-p100": ("n1",),
    "nvidia-tesla-a100": ("a2",),
    "nvidia-a100-80gb": ("a2",),
    "nvidia-h100-80gb": ("a3",),
}
Accelerator = Literal["nvidia-l4", "nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-p4",
                      "nvidia-tesla-p100", "nvidia-tesla-a100", "nvidia-a100-80gb",
                      "nvidia-h100-80gb"]


class NetworkConfig(Section):
    """GCP VPC ranges: one subnet for nodes, secondary ranges for pods and services."""

    nodes_cidr: Cidr = "10.10.0.0/20"
    pods_cidr: Cidr = "10.16.0.0/14"
    services_cidr: Cidr = "10.20.0.0/20"
    control_plane_cidr: Annotated[Cidr, Field(description="a /28 for the GKE control plane")] = \
        "172.16.0.0/28"
    # Private services access (Filestore, Memorystore) peers into this range.
    private_services_cidr: Cidr = "10.30.0.0/20"
    # Serverless VPC Access connector for the functions' egress to Redis and the cluster.
    connector_cidr: Cidr = "10.31.0.0/28"

    @field_validator("connector_cidr")
    @classmethod
    def _connector_is_28(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen != 28:
            raise ValueError("a Serverless VPC Access connector needs a /28, e.g. 10.31.0.0/28")
        return value

    @field_validator("control_plane_cidr")
    @classmethod
    def _control_plane_is_28(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen != 28:
            raise ValueError("GKE needs a /28 for the control plane, e.g. 172.16.0.0/28")
        return value


class AuthorizedNetwork(Section):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    cidr: Cidr


class ClusterConfig(Section):
    release_channel: Literal["RAPID", "REGULAR", "STABLE"] = "REGULAR"
    # Node locations; empty means the region's default zones.
    zones: list[str] = Field(default_factory=list)
    private_nodes: bool = True
    # A private endpoint also hides the control plane from authorized networks' public IPs.
    private_endpoint: bool = False
    authorized_networks: list[AuthorizedNetwork] = Field(default_factory=list)
    deletion_protection: bool = True


class SystemPoolConfig(Section):
    """The small always-on pool for the router, Agones controllers and other system pods."""

    machine_type: GceMachineType = "e2-standard-4"
    min_nodes: Annotated[int, Field(ge=1, le=100)] = 1
    max_nodes: Annotated[int, Field(ge=1, le=100)] = 3
    disk_size_gb: Annotated[int, Field(ge=20, le=2000)] = 100
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd"] = "pd-balanced"
    spot: bool = False


class GpuPoolConfig(Section):
    name: DnsLabel
    machine_type: GceMachineType
    accelerator: Accelerator
    # An int field, not Literal[1, 2, 4, 8]: a Literal admits `true` (True == 1).
    accelerator_count: Annotated[int, AfterValidator(_gpu_count)] = 1
    min_nodes: Annotated[int, Field(ge=0, le=1000)] = 0
    max_nodes: Annotated[int, Field(ge=1, le=1000)] = 4
    spot: bool = False
    disk_size_gb: Annotated[int, Field(ge=50, le=4000)] = 200
    disk_type: Literal["pd-standard", "pd-balanced", "pd-ssd"] = "pd-ssd"
    # GPU time-sharing: that many pods share one GPU (None: one pod per GPU).
    time_sharing_clients: Optional[Annotated[int, Field(ge=2, le=48)]] = None
    driver_version: Literal["DEFAULT", "LATEST"] = "LATEST"
    # Node locations for this pool; empty means the cluster's.
    zones: list[str] = Field(default_factory=list)


# --- Storage, cache -----------------------------------------------------------------------------

# Filestore tiers and their smallest instance, in GiB (Filestore docs, "Service tiers").
FILESTORE_MIN_CAPACITY_GB = {
    "BASIC_HDD": 1024,
    "BASIC_SSD": 2560,
    "ZONAL": 1024,
    "REGIONAL": 1024,
    "ENTERPRISE": 1024,
}


class StorageConfig(Section):
    """Shared store: models (read-only for WebUIs) and people's folders (trusted sync only)."""

    tier: Literal["BASIC_HDD", "BASIC_SSD", "ZONAL", "REGIONAL", "ENTERPRISE"] = "BASIC_HDD"
    capacity_gb: Annotated[int, Field(ge=1024, le=102400)] = 1024
    share_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,15}$")] = "sdfleet"


class CacheConfig(Section):
    """Memorystore Redis for routing state and activity (AUTH and TLS always on)."""

    tier: Literal["BASIC", "STANDARD_HA"] = "BASIC"
    memory_size_gb: Annotated[int, Field(ge=1, le=300)] = 1
    redis_version: Literal["REDIS_6_X", "REDIS_7_0", "REDIS_7_2"] = "REDIS_7_2"


# --- Fleet, culling, access, WebUI, models -------------------------------------------------------

class PeakHours(Section):
    """A larger warm buffer during working hours (Agones scheduled autoscaling)."""

    start_cron: Cron = "0 8 * * 1-5"
    duration: Annotated[str, Field(pattern=r"^[0-9]+h([0-9]+m)?$")] = "10h"
    timezone: Timezone = "Etc/UTC"
    buffer: Annotated[int, Field(ge=0, le=1000)] = 2


def buffer_policy_problems(buffer: int, min_replicas: int, max_replicas: int
                           ) -> list[tuple[str, int, str]]:
    """What Agones refuses in a Buffer policy with an integer bufferSize: (field, value, rule).

    Mirrors agones v1.50.0 pkg/apis/autoscaling/v1/fleetautoscaler.go,
    `(*BufferPolicy).ValidateBufferPolicy`; the emulator (tests/emulators/agones_validation.py)
    carries its own copy of that function and a test checks the two agree.
    """
    problems = []
    if min_replicas > max_replicas:
        problems.append(("minReplicas", min_replicas,
                         f"minReplicas must be <= maxReplicas ({max_replicas})"))
    if buffer <= 0:
        problems.append(("bufferSize", buffer, "a buffer must be >= 1 (Agones refuses 0)"))
    if max_replicas < buffer:
        problems.append(("bufferSize", buffer,
                         f"a buffer must be <= fleet.maxReplicas ({max_replicas})"))
    if min_replicas != 0 and min_replicas < buffer:
        problems.append(("minReplicas", min_replicas,
                         f"minReplicas must be 0 or >= every buffer ({buffer}): Agones refuses "
                         "0 < minReplicas < bufferSize"))
    return problems


class FleetConfig(Section):
    namespace: DnsLabel = "sdfleet-webui"
    # The GPU pool the WebUI pods run on (name of an entry in gpuPools; default: the first).
    gpu_pool: Optional[str] = None
    buffer: Annotated[int, Field(ge=0, le=1000)] = 1
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = 0
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 8
    peak_hours: Optional[PeakHours] = None
    # Low-priority pods that keep GPU nodes up for the next person (0: none).
    placeholders: Annotated[int, Field(ge=0, le=1000)] = 0
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    scratch_size: Quantity = "50Gi"


class CullingConfig(Section):
    idle_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 30
    max_session_hours: Annotated[int, Field(ge=1, le=7 * 24)] = 8
    orphan_grace_minutes: Annotated[int, Field(ge=1, le=120)] = 5
    schedule: Cron = "* * * * *"


_MEMBER = re.compile(r"^(user|group|serviceAccount):[^@\s]+@[^@\s]+\.[a-z]{2,}$|^domain:[a-z0-9.-]+\.[a-z]{2,}$")


def _member(value: str) -> str:
    if not _MEMBER.match(value):
        raise ValueError("expected user:<email>, group:<email>, serviceAccount:<email> or "
                         "domain:<domain>; allUsers and allAuthenticatedUsers are never allowed")
    return value


class AccessConfig(Section):
    """Who may open the platform (IAP) and under which name.

    IAP signs people in with an OAuth client. Without `oauthClientId` it uses the
    Google-managed client, which admits only accounts of the project's own organization
    (IAP docs, "Customize an OAuth configuration for IAP": "Google-managed OAuth clients
    restrict access to users within the same organization"); then `organizationDomain` names
    that organization and every member must belong to it. People from outside need a custom
    OAuth client: its id here, its secret in the Pulumi secret `sdfleet:iapOauthClientSecret`.
    """

    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")]
    members: Annotated[list[Annotated[str, AfterValidator(_member)]], Field(min_length=1)]
    organization_domain: Optional[Annotated[str, Field(
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")]] = None
    # An OAuth 2.0 web client id (`<number>-<id>.apps.googleusercontent.com`).
    oauth_client_id: Optional[Annotated[str, Field(
        pattern=r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$")]] = None

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backendServiceId" in data:
            raise ValueError("access.backendServiceId was removed: the stack now makes the "
                             "backend service itself, so the IAP audience is known in the same "
                             "`pulumi up`; delete the key")
        return data


def member_domain(member: str) -> str:
    """The domain a `user:`/`group:`/`serviceAccount:`/`domain:` member belongs to."""
    return member.split(":", 1)[1].rsplit("@", 1)[-1].lower()


class WebuiConfig(Section):
    framework: Literal["automatic1111", "sdnext", "comfyui"] = "automatic1111"
    # The AWS variant's ECR tag; GCP stacks tag each image by its content hash (images.py).
    image_tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] = "v1"
    router_replicas: Annotated[int, Field(ge=2, le=20)] = 3
    request_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    max_upload_mb: Annotated[int, Field(ge=1, le=4096)] = 200

    @model_validator(mode="before")
    @classmethod
    def _moved_image_keys(cls, data: Any) -> Any:
        moved = {"image": "webui-<framework>", "routerImage": "router"}
        for key, image in moved.items():
            if isinstance(data, dict) and key in data:
                raise ValueError(f"webui.{key} moved: set images.prebuilt.{image} to the full "
                                 "reference instead (or leave it out and the stack builds it)")
        return data


class ModelSpec(Section):
    """One model for the shared store (docs/contracts.md section 6)."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    # Optional for CivitAI entries only: CivitAI's own type decides the folder.
    kind: Optional[Literal["checkpoint", "vae", "lora", "controlnet", "embedding", "upscaler",
                           "extension"]] = None
    source: Literal["civitai", "url", "huggingface"]
    civitai_version_id: Optional[Annotated[int, Field(ge=1)]] = None
    url: Optional[Annotated[str, AfterValidator(_download_url)]] = None
    repo: Optional[Annotated[str, AfterValidator(_hf_repo_id)]] = None
    file: Optional[Annotated[str, AfterValidator(_relative_path)]] = None
    revision: Optional[Annotated[str, AfterValidator(_revision)]] = None
    sha256: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = None
    required: bool = True


class ModelsConfig(Section):
    default_checkpoint: Optional[str] = None
    items: list[ModelSpec] = Field(default_factory=list)


class BudgetConfig(Section):
    """Caps the policy pack enforces at preview time."""

    max_gpu_nodes: Annotated[int, Field(ge=0, le=10000)] = 16


# --- AWS (EKS batch variant) ----------------------------------------------------------------------

# A queue's visibility timeout is the job timeout plus this margin (upload of results, the
# completion notice, the agent's own start), and SQS allows at most 12 hours.
AWS_VISIBILITY_MARGIN_SECONDS = 300
SQS_MAX_VISIBILITY_SECONDS = 43200


# The WebUIs a batch runtime can drive: the agent speaks A1111's /sdapi/v1 API or ComfyUI's
# /prompt + /history + /view API (images/queue-agent/sdfleet_agent/webui.py, comfyui.py).
BATCH_FRAMEWORKS = ("automatic1111", "comfyui")


class AwsRuntimeConfig(Section):
    """One batch runtime: a queue, a KEDA-scaled workload and its WebUI API image."""

    name: DnsLabel
    # Which WebUI runs beside the agent: decides the image and the API the agent speaks.
    framework: Literal["automatic1111", "comfyui"] = "automatic1111"
    mode: Literal["scaledjob", "scaledobject"] = "scaledjob"
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = 4
    activation_queue_length: Annotated[int, Field(ge=0, le=1000)] = 0
    queue_length_per_replica: Annotated[int, Field(ge=1, le=1000)] = 1
    # Requests of the WebUI container (the agent beside it is small); one GPU per pod.
    cpu: Quantity = "4"
    memory: Quantity = "16Gi"
    # The WebUI's own scratch space (/scratch: its data folder, outputs, temp files).
    scratch_size: Quantity = "50Gi"


class AwsConfig(Section):
    # Split into three private node subnets (a quarter each) and three small public ones.
    vpc_cidr: Cidr = "10.40.0.0/16"
    zone_count: Annotated[int, Field(ge=2, le=3)] = 3
    kubernetes_version: Annotated[str, Field(pattern=r"^1\.[0-9]{2}$")] = "1.33"
    # Who may reach the EKS API endpoint publicly; empty keeps it private only.
    public_access_cidrs: list[Cidr] = Field(default_factory=list)
    system_instance_type: Ec2InstanceType = "m6i.large"
    system_nodes: Annotated[int, Field(ge=1, le=20)] = 2
    gpu_families: Annotated[list[Literal["g4dn", "g5", "g6", "g6e", "p3", "p4d"]],
                            Field(min_length=1)] = ["g5", "g6"]
    gpu_limit: Annotated[int, Field(ge=1, le=1000)] = 8
    time_slicing_replicas: Optional[Annotated[int, Field(ge=2, le=48)]] = None
    runtimes: Annotated[list[AwsRuntimeConfig], Field(min_length=1)] = \
        [AwsRuntimeConfig(name="sdwebui")]
    job_timeout_seconds: Annotated[int, Field(ge=30, le=43200)] = 900
    max_receive_count: Annotated[int, Field(ge=1, le=100)] = 3
    results_expiry_days: Annotated[int, Field(ge=1, le=3650)] = 30
    api_rate_limit: Annotated[float, Field(gt=0, le=10000)] = 5
    api_burst_limit: Annotated[int, Field(ge=1, le=5000)] = 10
    api_quota_per_day: Annotated[int, Field(ge=1)] = 5000
    allowed_image_hosts: list[ImageHost] = Field(default_factory=list)
    max_image_side: Annotated[int, Field(ge=256, le=4096)] = 1536
    max_steps: Annotated[int, Field(ge=1, le=500)] = 80
    max_batch: Annotated[int, Field(ge=1, le=16)] = 4

    @field_validator("vpc_cidr")
    @classmethod
    def _vpc_fits_six_subnets(cls, value: str) -> str:
        if ipaddress.ip_network(value).prefixlen > 20:
            raise ValueError("the VPC needs at least a /20 (three node subnets and three public "
                             "/24s), e.g. 10.40.0.0/16")
        return value


class ImagesConfig(Section):
    """Container images. Built by the stack (Cloud Build on GCP) unless given here."""
    prebuilt: dict[str, str] = Field(default_factory=dict)  # image name -> full reference


class PlatformConfig(Section):
    cloud: Literal["gcp", "aws"]
    name_prefix: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,14}[a-z0-9]$")] = "sdfleet"
    # Cost-allocation labels put on every resource that takes labels.
    labels: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")],
                 Annotated[str, Field(pattern=r"^[a-z0-9_-]{0,63}$")]] = \
        Field(default_factory=lambda: {"app": "sdfleet"})
    network: NetworkConfig = NetworkConfig()
    cluster: ClusterConfig = ClusterConfig()
    system_pool: SystemPoolConfig = SystemPoolConfig()
    gpu_pools: list[GpuPoolConfig] = Field(default_factory=list)
    storage: StorageConfig = StorageConfig()
    cache: CacheConfig = CacheConfig()
    fleet: FleetConfig = FleetConfig()
    culling: CullingConfig = CullingConfig()
    access: Optional[AccessConfig] = None
    webui: WebuiConfig = WebuiConfig()
    images: ImagesConfig = Field(default_factory=ImagesConfig)
    models: ModelsConfig = ModelsConfig()
    budget: BudgetConfig = BudgetConfig()
    aws: Optional[AwsConfig] = None

    def gpu_pool(self, name: str) -> GpuPoolConfig:
        return next(p for p in self.gpu_pools if p.name == name)

    @property
    def fleet_pool(self) -> GpuPoolConfig:
        return self.gpu_pool(self.fleet.gpu_pool) if self.fleet.gpu_pool else self.gpu_pools[0]


class StackConfig(BaseModel):
    """The validated platform plus the provider keys it depends on."""

    model_config = ConfigDict(frozen=True)

    platform: PlatformConfig
    stack: str
    gcp_project: Optional[str] = None
    gcp_region: Optional[str] = None
    aws_region: Optional[str] = None


# Sections only a GCP interactive platform reads (field names of PlatformConfig).
GCP_SECTIONS = frozenset({"network", "cluster", "system_pool", "gpu_pools", "storage", "cache",
                          "fleet", "culling", "access"})


# --- Errors ----------------------------------------------------------------------------------------

class ConfigError(Exception):
    """Every problem of a stack config, one line each; raised before any resource exists."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("invalid stack config:\n" + "\n".join(f"  {line}" for line in lines))


def _path(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _section_for(loc: tuple) -> type[BaseModel] | None:
    """The model class that holds the last key of `loc` (to list the keys it allows)."""
    model: Any = PlatformConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next((f for n, f in model.model_fields.items()
                      if f.alias == part or n == part), None)
        if field is None:
            return None
        model = _innermost_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _innermost_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _innermost_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _lines_from_validation_error(exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _path(CONFIG_KEY, loc)
        if err["type"] == "extra_forbidden":
            section = _section_for(loc)
            allowed = sorted(f.alias or n for n, f in section.model_fields.items()) if section else []
            hint = f"; secrets go in their own keys ({', '.join('sdfleet:' + k for k in SECRET_KEYS)})" \
                if any(w in str(loc[-1]).lower() for w in ("token", "password", "secret", "key")) else ""
            lines.append(f"{path}: unknown key; allowed keys here: {', '.join(allowed)}{hint}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {value!r})"
        lines.append(f"{path}: {msg}{shown}")
    return lines


# --- Cross-field rules ------------------------------------------------------------------------------

def cross_field_problems(p: PlatformConfig, gcp_region: Optional[str],
                         aws_region: Optional[str]) -> list[str]:
    """The rules that involve more than one field; one line per problem."""
    problems: list[str] = []

    def bad(loc: tuple, value: Any, allowed: str) -> None:
        problems.append(f"{_path(CONFIG_KEY, loc)}: {value!r} is not allowed; {allowed}")

    # Sections of the other cloud are a mistake (a copied stack file, a wrong `cloud`):
    # they would be silently ignored, so refuse them.
    for field in sorted(p.model_fields_set & (GCP_SECTIONS if p.cloud == "aws" else {"aws"})):
        key = PlatformConfig.model_fields[field].alias or field
        problems.append(f"{_path(CONFIG_KEY, (key,))}: not used by a `cloud: {p.cloud}` stack; "
                        f"remove it (or set cloud: {'gcp' if p.cloud == 'aws' else 'aws'})")

    if p.cloud == "gcp":
        if not gcp_region:
            problems.append("gcp:region: missing; set it with `pulumi config set gcp:region <region>`")
        if not p.gpu_pools:
            problems.append(f"{CONFIG_KEY}.gpuPools: empty; a GCP platform needs at least one GPU pool")
        if p.access is None:
            problems.append(f"{CONFIG_KEY}.access: missing; set access.domain and access.members "
                            "(who may sign in through IAP)")
        else:
            problems += _iap_member_problems(p.access)
    else:
        if not aws_region:
            problems.append("aws:region: missing; set it with `pulumi config set aws:region <region>`")
        if p.aws is None:
            problems.append(f"{CONFIG_KEY}.aws: missing; a `cloud: aws` stack needs the aws section")

    seen: dict[str, int] = {}
    for i, pool in enumerate(p.gpu_pools):
        if pool.name in seen:
            bad(("gpuPools", i, "name"), pool.name, f"names must be unique (gpuPools[{seen[pool.name]}])")
        seen[pool.name] = i
        if pool.min_nodes > pool.max_nodes:
            bad(("gpuPools", i, "minNodes"), pool.min_nodes,
                f"minNodes must be <= maxNodes ({pool.max_nodes})")
        family = pool.machine_type.split("-", 1)[0]
        families = ACCELERATOR_FAMILIES[pool.accelerator]
        if family not in families:
            bad(("gpuPools", i, "accelerator"), pool.accelerator,
                f"it needs machine family {'/'.join(families)} "
                f"(machineType is {pool.machine_type!r}); "
                "L4 needs g2, A100 needs a2, T4/V100/P4/P100 need n1, H100 needs a3")
        for j, zone in enumerate(pool.zones):
            if gcp_region and not _zone_in_region(zone, gcp_region):
                bad(("gpuPools", i, "zones", j), zone, f"zones must be in gcp:region {gcp_region!r}, "
                    f"e.g. {gcp_region}-a")
    problems += _prebuilt_image_problems(p.images)
    if p.system_pool.min_nodes > p.system_pool.max_nodes:
        bad(("systemPool", "minNodes"), p.system_pool.min_nodes,
            f"minNodes must be <= maxNodes ({p.system_pool.max_nodes})")
    if p.cloud == "gcp" and gcp_region:
        for j, zone in enumerate(p.cluster.zones):
            if not _zone_in_region(zone, gcp_region):
                bad(("cluster", "zones", j), zone,
                    f"zones must be in gcp:region {gcp_region!r}, e.g. {gcp_region}-a")

    ranges = [("network", "nodesCidr"), ("network", "podsCidr"), ("network", "servicesCidr"),
              ("network", "controlPlaneCidr"), ("network", "privateServicesCidr"),
              ("network", "connectorCidr")]
    nets = {r: ipaddress.ip_network(getattr(p.network, _snake(r[1]))) for r in ranges}
    for a_i, a in enumerate(ranges):
        for b in ranges[a_i + 1:]:
            if nets[a].overlaps(nets[b]):
                bad(a, str(nets[a]), f"CIDRs must not overlap; it overlaps {'.'.join(b)} ({nets[b]})")

    if p.gpu_pools and p.fleet.gpu_pool and p.fleet.gpu_pool not in seen:
        bad(("fleet", "gpuPool"), p.fleet.gpu_pool, f"must name a GPU pool: {', '.join(seen)}")
    buffers = [(("fleet", "buffer"), p.fleet.buffer)]
    if p.fleet.peak_hours:
        buffers.append((("fleet", "peakHours", "buffer"), p.fleet.peak_hours.buffer))
    reported: set = set()
    for loc, buffer in buffers:
        for key, value, allowed in buffer_policy_problems(buffer, p.fleet.min_replicas,
                                                          p.fleet.max_replicas):
            where = loc if key == "bufferSize" else ("fleet", key)
            if (where, allowed) not in reported:
                reported.add((where, allowed))
                bad(where, value, allowed)

    minimum = FILESTORE_MIN_CAPACITY_GB[p.storage.tier]
    if p.storage.capacity_gb < minimum:
        bad(("storage", "capacityGb"), p.storage.capacity_gb,
            f"Filestore tier {p.storage.tier} needs at least {minimum} GiB")

    names = [m.name for m in p.models.items]
    for i, m in enumerate(p.models.items):
        if names.index(m.name) != i:
            bad(("models", "items", i, "name"), m.name, "model names must be unique")
        if m.kind is None and m.source != "civitai":
            problems.append(f"{_path(CONFIG_KEY, ('models', 'items', i, 'kind'))}: missing; "
                            "only CivitAI entries may leave kind out")
        if m.kind == "extension" and (m.source != "url" or not re.fullmatch(r"[0-9a-f]{40}",
                                                                             m.revision or "")):
            bad(("models", "items", i, "revision"), m.revision,
                "an extension needs source 'url' and revision set to a full 40-hex commit")
        needs = {"civitai": ("civitaiVersionId",), "url": ("url",), "huggingface": ("repo", "file")}
        for key in needs[m.source]:
            if getattr(m, _snake(key)) is None:
                problems.append(f"{_path(CONFIG_KEY, ('models', 'items', i, key))}: missing; "
                                f"source {m.source!r} needs {' and '.join(needs[m.source])}")
    if p.models.default_checkpoint is not None:
        checkpoints = [m.name for m in p.models.items if m.kind == "checkpoint"]
        if p.models.default_checkpoint not in checkpoints:
            bad(("models", "defaultCheckpoint"), p.models.default_checkpoint,
                f"must name a checkpoint in models.items: {', '.join(checkpoints) or '(none)'}")

    if p.aws is not None:
        runtimes = [r.name for r in p.aws.runtimes]
        for i, name in enumerate(runtimes):
            if runtimes.index(name) != i:
                bad(("aws", "runtimes", i, "name"), name, "runtime names must be unique")
        for i, cidr in enumerate(p.aws.public_access_cidrs):
            if ipaddress.ip_network(cidr).prefixlen < 8:
                bad(("aws", "publicAccessCidrs", i), cidr,
                    "the EKS API is opened only to known networks (a /8 or narrower), "
                    "e.g. 203.0.113.0/24; leave the list empty for a private endpoint")
        # Karpenter sizes GPU nodes from the instance type's physical GPU count and ignores
        # the device plugin's time-slicing replicas (kubernetes-sigs/karpenter#729, #2140):
        # it would launch one node per pod and then consolidate, so the combination is refused.
        if p.aws.time_slicing_replicas is not None:
            bad(("aws", "timeSlicingReplicas"), p.aws.time_slicing_replicas,
                "GPU time-slicing is not supported with Karpenter, which sizes nodes by physical "
                "GPUs and ignores time-slicing replicas (kubernetes-sigs/karpenter#729); leave "
                "it unset (one pod per GPU)")
        # SQS caps a visibility timeout at 12 hours, and it must outlast the job.
        if p.aws.job_timeout_seconds + AWS_VISIBILITY_MARGIN_SECONDS > SQS_MAX_VISIBILITY_SECONDS:
            bad(("aws", "jobTimeoutSeconds"), p.aws.job_timeout_seconds,
                f"at most {SQS_MAX_VISIBILITY_SECONDS - AWS_VISIBILITY_MARGIN_SECONDS} s, so the "
                f"queues' visibility timeout (job timeout + {AWS_VISIBILITY_MARGIN_SECONDS} s) "
                f"fits SQS's {SQS_MAX_VISIBILITY_SECONDS} s")
    return problems


def _prebuilt_image_problems(images: ImagesConfig) -> list[str]:
    """`images.prebuilt`: known image names (components/images.py), full references."""
    from components.images import IMAGES, REFERENCE

    problems = []
    for name, reference in images.prebuilt.items():
        key = _path(CONFIG_KEY, ("images", "prebuilt", name))
        if name not in IMAGES:
            problems.append(f"{key}: unknown image {name!r}; known: {', '.join(IMAGES)}")
        elif not REFERENCE.match(reference):
            problems.append(f"{key}: {reference!r} is not a full image reference; expected "
                            "host/path[:tag][@sha256:<64 hex>], lower-case path, no spaces, e.g. "
                            "us-docker.pkg.dev/my-project/sdfleet/router:v1")
    return problems


def _iap_member_problems(access: AccessConfig) -> list[str]:
    """With the Google-managed OAuth client IAP signs in only the organization's own accounts:
    refuse members it could never admit (a custom client, `oauthClientId`, admits anyone)."""
    if access.oauth_client_id is not None:
        return []
    org = access.organization_domain
    if org is None:
        return [f"{CONFIG_KEY}.access.organizationDomain: missing; IAP's Google-managed OAuth "
                "client admits only accounts of the project's organization: set "
                "organizationDomain to that organization's domain, or set access.oauthClientId "
                "(and the secret sdfleet:iapOauthClientSecret) to admit people from outside"]
    problems = []
    for i, member in enumerate(access.members):
        if member.startswith("serviceAccount:"):
            continue  # programmatic callers present their own OIDC token
        domain = member_domain(member)
        if domain != org and not domain.endswith("." + org):
            problems.append(
                f"{_path(CONFIG_KEY, ('access', 'members', i))}: {member!r} is outside "
                f"access.organizationDomain {org!r}, and IAP's Google-managed OAuth client "
                "admits only the organization's accounts; remove it, or set access.oauthClientId "
                "(and the secret sdfleet:iapOauthClientSecret) to admit people from outside")
    return problems


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


def _zone_in_region(zone: str, region: str) -> bool:
    return re.fullmatch(re.escape(region) + r"-[a-z]", zone) is not None


# --- Loading -----------------------------------------------------------------------------------------

def parse_platform(raw: Any, *, stack: str, gcp_project: Optional[str] = None,
                   gcp_region: Optional[str] = None,
                   aws_region: Optional[str] = None) -> StackConfig:
    """Validate the raw `sdfleet:platform` object; raise ConfigError with every problem."""
    if raw is None:
        raise ConfigError([f"{CONFIG_KEY}: missing; see Pulumi.dev.yaml for a complete example"])
    if not isinstance(raw, dict):
        raise ConfigError([f"{CONFIG_KEY}: expected a mapping of settings (got {type(raw).__name__})"])
    try:
        platform = PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_lines_from_validation_error(exc)) from None
    problems = cross_field_problems(platform, gcp_region, aws_region)
    if platform.cloud == "gcp" and not gcp_project:
        problems.insert(0, "gcp:project: missing; set it with `pulumi config set gcp:project <id>`")
    if problems:
        raise ConfigError(problems)
    return StackConfig(platform=platform, stack=stack, gcp_project=gcp_project,
                       gcp_region=gcp_region, aws_region=aws_region)


def _yaml_path(path: tuple) -> str:
    """A key path inside a stack file, in the form the errors use (`sdfleet:platform.a[0].b`)."""
    parts = list(path[1:] if path[:1] == ("config",) else path)
    out = str(parts.pop(0)) if parts else "(top level)"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def read_stack_yaml(text: str, source: str = "stack file") -> Any:
    """Parse a stack file, refusing a key given twice in one mapping (YAML says keys are
    unique; PyYAML would silently keep the last one, so a half-edited file would deploy
    something nobody wrote)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML: {exc}"]) from None
    problems: list[str] = []

    def walk(node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                line = key_node.start_mark.line + 1
                if key in seen:
                    problems.append(f"{_yaml_path(path + (key,))}: duplicate key (lines {seen[key]} "
                                    f"and {line} of {source}); keep one")
                seen.setdefault(key, line)
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, path + (i,))

    if root is not None:
        walk(root, ())
    if problems:
        raise ConfigError(problems)
    return yaml.safe_load(text)


def _secret_like(key: str) -> bool:
    return key in SECRET_KEYS or re.search(r"(token|secret|password)", key, re.IGNORECASE) is not None


def secret_key_problems(config: dict[str, Any]) -> list[str]:
    """`sdfleet:civitaiToken: hf_...` in plain text: the stack file (committed, shown in
    previews) would hold the credential. Such keys must be `secure:` values."""
    problems = []
    for full_key, value in config.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace != "sdfleet" or key == "platform" or not _secret_like(key):
            continue
        if not (isinstance(value, dict) and set(value) == {"secure"}
                and isinstance(value["secure"], str)):
            problems.append(f"{full_key}: a plaintext value where a secret is required; set it "
                            f"with `pulumi config set --secret {full_key} <value>` (the stack "
                            "file then holds `secure: <ciphertext>`)")
    return problems


def parse_stack_config(config: dict[str, Any], *, stack: str) -> StackConfig:
    """Validate a whole `config:` map of a stack file (what `make plan` reads): the secret
    keys, then `sdfleet:platform` with its provider keys. Raises ConfigError."""
    import json

    problems = secret_key_problems(config)
    raw = config.get(CONFIG_KEY)
    if isinstance(raw, str):  # set with `pulumi config set sdfleet:platform '{...}'`
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(problems + [f"{CONFIG_KEY}: not valid JSON: {exc}"]) from None
    try:
        stack_config = parse_platform(raw, stack=stack, gcp_project=config.get("gcp:project"),
                                      gcp_region=config.get("gcp:region"),
                                      aws_region=config.get("aws:region"))
    except ConfigError as exc:
        raise ConfigError(problems + exc.lines) from None
    if problems:
        raise ConfigError(problems)
    return stack_config


def load() -> StackConfig:
    """Read and validate the current stack's config (inside a Pulumi program)."""
    import json

    import pulumi

    from pulumi.runtime.config import get_config, is_config_secret

    plaintext = [f"sdfleet:{key}" for key in SECRET_KEYS
                 if get_config(f"sdfleet:{key}") is not None and not is_config_secret(f"sdfleet:{key}")]
    if plaintext:
        raise ConfigError(secret_key_problems({key: get_config(key) for key in plaintext}))
    sdfleet = pulumi.Config("sdfleet")
    raw = sdfleet.get_object("platform")
    if isinstance(raw, str):  # a JSON string set with `pulumi config set sdfleet:platform '{...}'`
        raw = json.loads(raw)
    return parse_platform(raw, stack=pulumi.get_stack(),
                          gcp_project=pulumi.Config("gcp").get("project"),
                          gcp_region=pulumi.Config("gcp").get("region"),
                          aws_region=pulumi.Config("aws").get("region"))
