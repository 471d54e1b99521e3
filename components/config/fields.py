"""Config building blocks: the section base and the single-value rules (CIDR, cron, time zone,
machine type, image reference, model URL...), each defined once and attached to every field it
applies to, so no later consumer (the components, tools/cost/) ever sees a value that did not
pass it."""

from __future__ import annotations

import functools
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from components.registries.accelerators import GCE_ACCELERATORS

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
    """An IPv4 CIDR block with its host bits zero, e.g. 10.0.0.0/20."""
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
# consumer (the components, tools/cost/) ever sees a value that did not pass it.

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
    """A five-field unix-cron expression with every value in range, e.g. `0 8 * * 1-5`."""
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
    """An IANA time zone name, e.g. Europe/Berlin.

    Agones ValidateSchedulePolicy loads it with Go's time.LoadLocation."""
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
    """A GCE machine type `<family>-<shape>` of a known family, e.g. g2-standard-8."""
    family, dash, shape = value.partition("-")
    if not dash or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", shape):
        raise ValueError("a GCE machine type looks like <family>-<shape>, e.g. g2-standard-8")
    if family not in GCE_MACHINE_FAMILIES:
        raise ValueError(f"unknown machine family {family!r}; known: "
                         f"{', '.join(GCE_MACHINE_FAMILIES)}")
    return value


def _ec2_instance_type(value: str) -> str:
    """An EC2 instance type `<family>.<size>`, e.g. m6i.large."""
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
    """An image reference `[registry[:port]/]path[:tag][@sha256:<hex>]`."""
    if len(value) > 255 or not IMAGE_REFERENCE.fullmatch(value):
        raise ValueError("not an image reference: [registry[:port]/]path[:tag][@sha256:<hex>], "
                         "lowercase path, no spaces, e.g. us-docker.pkg.dev/p/repo/webui:v1")
    return value


_HOSTNAME = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def _image_host(value: str) -> str:
    """A bare lowercase host name (no wildcard, scheme, port or path).

    Compared with an init image URL's hostname (functions/submit/sdfleet_submit/job.py)."""
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
    """An https URL with no credential in it (it is written into a ConfigMap)."""
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
    """A relative path inside the repository (no `.` or `..` segments, no backslashes)."""
    segments = value.split("/")
    if (not value or value.startswith("/") or "\\" in value or re.search(r"\s", value)
            or any(seg in ("", ".", "..") for seg in segments)):
        raise ValueError("a relative path inside the repository (e.g. sd_xl_base_1.0.safetensors "
                         "or vae/diffusion.safetensors): no leading '/', no '.' or '..' "
                         "segments, no backslashes or spaces")
    return value


def _hf_repo_id(value: str) -> str:
    """A Hugging Face repo id `<owner>/<name>`."""
    # huggingface_hub's validate_repo_id (utils/_validators.py): `[namespace/]name` of
    # [\w.-], at most 96 characters per part, and never '--' or '..' anywhere.
    if (not re.fullmatch(r"[\w.-]{1,96}/[\w.-]{1,96}", value, re.ASCII) or ".." in value
            or "--" in value or value.endswith(".git")
            or any(part in (".", "..") or part.startswith(("-", ".")) for part in value.split("/"))):
        raise ValueError("a Hugging Face repo id <owner>/<name> (letters, digits, '_', '-', "
                         "'.'; no '..' or '--'), e.g. stabilityai/stable-diffusion-xl-base-1.0")
    return value


def _revision(value: str) -> str:
    """A branch, tag or commit (letters, digits, `_`, `-`, `.`, `/`; no `..`)."""
    if not re.fullmatch(r"[\w][\w.\-/]{0,127}", value, re.ASCII) or ".." in value:
        raise ValueError("a branch, tag or commit (letters, digits, '_', '-', '.', '/'; no '..')")
    return value


def _gpu_count(value: int) -> int:
    """1, 2, 4 or 8."""
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

# Which machine family each accelerator attaches to, and the accepted accelerator types:
# from the registry (components/registries/accelerators.py).
ACCELERATOR_FAMILIES: dict[str, tuple[str, ...]] = {
    name: a.machine_families for name, a in GCE_ACCELERATORS.items()}
Accelerator = Literal[tuple(GCE_ACCELERATORS)]



_MEMBER = re.compile(r"^(user|group|serviceAccount):[^@\s]+@[^@\s]+\.[a-z]{2,}$|^domain:[a-z0-9.-]+\.[a-z]{2,}$")


def _member(value: str) -> str:
    """`user:<email>`, `group:<email>`, `serviceAccount:<email>` or `domain:<domain>`."""
    if not _MEMBER.match(value):
        raise ValueError("expected user:<email>, group:<email>, serviceAccount:<email> or "
                         "domain:<domain>; allUsers and allAuthenticatedUsers are never allowed")
    return value



def member_domain(member: str) -> str:
    """The domain a `user:`/`group:`/`serviceAccount:`/`domain:` member belongs to."""
    return member.split(":", 1)[1].rsplit("@", 1)[-1].lower()

