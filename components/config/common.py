"""The sections both clouds read: WebUI resources, fleet, culling, access, WebUI, models, limits."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import AfterValidator, Field, model_validator

from components.config.fields import (
    Cron,
    DnsLabel,
    Quantity,
    Section,
    _download_url,
    _hf_repo_id,
    _member,
    _relative_path,
    _revision,
)
from components.config.profiles import PeakHours, _profile_member
from components.registries.frameworks import WEBUI_FRAMEWORKS

# --- Fleet, culling, access, WebUI, models -------------------------------------------------------

class WebuiResources(Section):
    """What one WebUI container asks of its node: the GCP fleet's pods and each batch runtime's
    workers (one GPU each; the sidecar beside it is small)."""

    cpu: Quantity = Field(
        "4",
        description="CPU request of the WebUI container (Kubernetes quantity).")
    memory: Quantity = Field(
        "16Gi",
        description="Memory request and limit of the WebUI container (Kubernetes quantity).")
    # The WebUI's own scratch space (/scratch: its data folder, outputs, temp files).
    scratch_size: Quantity = Field(
        "50Gi",
        description="Size limit of the WebUI's scratch space (emptyDir at /scratch).")


class FleetConfig(WebuiResources):
    namespace: DnsLabel = Field(
        "sdfleet-webui",
        description="Kubernetes namespace of the WebUI game servers.")
    # The GPU pool the WebUI pods run on (name of an entry in gpuPools; default: the first).
    gpu_pool: Optional[str] = Field(
        None,
        description="The gpuPools entry the WebUI pods run on; default: the first.")
    buffer: Annotated[int, Field(ge=0, le=1000)] = Field(
        1,
        description="Ready (warm) WebUI pods to keep beyond the allocated ones.")
    min_replicas: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Fewest game servers; 0 or at least every buffer (Agones rule).")
    max_replicas: Annotated[int, Field(ge=1, le=1000)] = Field(
        8,
        description="Most game servers (people at once plus the buffer).")
    peak_hours: Optional[PeakHours] = Field(
        None,
        description="A larger buffer in working hours (Agones scheduled autoscaling).")
    # Low-priority pods that keep GPU nodes up for the next person (0: none).
    placeholders: Annotated[int, Field(ge=0, le=1000)] = Field(
        0,
        description="Low-priority pods that keep GPU nodes up for the next person (0: none).")


class CullingConfig(Section):
    idle_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = Field(
        30,
        description="Shut a session down after this many minutes without activity.")
    max_session_hours: Annotated[int, Field(ge=1, le=7 * 24)] = Field(
        8,
        description="Shut a session down after this many hours, active or not.")
    orphan_grace_minutes: Annotated[int, Field(ge=1, le=120)] = Field(
        5,
        description="How long an allocated pod may have no mapping before it is shut down.")
    schedule: Cron = Field(
        "* * * * *",
        description="When the culler runs (Cloud Scheduler, five-field unix cron).")
    warn_minutes: Annotated[int, Field(ge=1, le=60)] = Field(
        10,
        description="The WebUI page warns this many minutes before a session ends (idle, maximum age).")



class AccessConfig(Section):
    """Who may open the platform (IAP) and under which name.

    IAP signs people in with an OAuth client. Without `oauthClientId` it uses the
    Google-managed client, which admits only accounts of the project's own organization
    (IAP docs, "Customize an OAuth configuration for IAP": "Google-managed OAuth clients
    restrict access to users within the same organization"); then `organizationDomain` names
    that organization and every member must belong to it. People from outside need a custom
    OAuth client: its id here, its secret in the Pulumi secret `sdfleet:iapOauthClientSecret`.
    """

    domain: Annotated[str, Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")] = Field(
        description="The platform's host name; the Google-managed certificate is issued for it.")
    members: Annotated[list[Annotated[str, AfterValidator(_member)]], Field(min_length=1)] = Field(
        description="Who may sign in through IAP: user:, group:, serviceAccount: or domain: members.")
    organization_domain: Optional[Annotated[str, Field( pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,}$")]] = Field(
        None,
        description=("The organization whose accounts IAP's Google-managed OAuth client admits; every member"
                    " must belong to it. Required unless oauthClientId is set."))
    # An OAuth 2.0 web client id (`<number>-<id>.apps.googleusercontent.com`).
    oauth_client_id: Optional[Annotated[str, Field( pattern=r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$")]] = Field(
        None,
        description=("A custom OAuth client for IAP (`<number>-<id>.apps.googleusercontent.com`), to admit "
                    "people from outside the organization; its secret goes in sdfleet:iapOauthClientSecret."))
    admins: list[Annotated[str, AfterValidator(_profile_member)]] = Field(
        default_factory=list,
        description=("Who sees /_sdfleet/admin (running sessions, usage, budgets) and may end a "
                     "session: user:, group: or domain: members."))

    @model_validator(mode="before")
    @classmethod
    def _removed_keys(cls, data: Any) -> Any:
        if isinstance(data, dict) and "backendServiceId" in data:
            raise ValueError("access.backendServiceId was removed: the stack now makes the "
                             "backend service itself, so the IAP audience is known in the same "
                             "`pulumi up`; delete the key")
        return data



class WebuiConfig(Section):
    framework: Literal[WEBUI_FRAMEWORKS] = Field(
        "automatic1111",
        description="The WebUI every person's pod runs.")
    # The AWS variant's ECR tag; GCP stacks tag each image by its content hash (images.py).
    image_tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] = Field(
        "v1",
        description="Tag of the images an AWS stack pushes to ECR (GCP stacks tag images by content hash).")
    router_replicas: Annotated[int, Field(ge=2, le=20)] = Field(
        3,
        description="Router pods (at least 2, behind a PodDisruptionBudget).")
    request_timeout_seconds: Annotated[int, Field(ge=60, le=86400)] = Field(
        3600,
        description="How long the router waits on a WebUI request (a generation can run long).")
    max_upload_mb: Annotated[int, Field(ge=1, le=4096)] = Field(
        200,
        description="Largest request body the router accepts, in MB.")

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

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")] = Field(
        description="The model's name in the model list (unique).")
    # Optional for CivitAI entries only: CivitAI's own type decides the folder.
    kind: Optional[Literal["checkpoint", "vae", "lora", "controlnet", "embedding", "upscaler", "extension"]] = Field(
        None,
        description=("Which folder the model goes to; optional for CivitAI entries only (CivitAI's type "
                    "decides)."))
    source: Literal["civitai", "url", "huggingface"] = Field(
        description="Where the model comes from.")
    civitai_version_id: Optional[Annotated[int, Field(ge=1)]] = Field(
        None,
        description="The CivitAI model version id (source civitai).")
    url: Optional[Annotated[str, AfterValidator(_download_url)]] = Field(
        None,
        description="An https URL without credentials (source url).")
    repo: Optional[Annotated[str, AfterValidator(_hf_repo_id)]] = Field(
        None,
        description="A Hugging Face repo id `<owner>/<name>` (source huggingface).")
    file: Optional[Annotated[str, AfterValidator(_relative_path)]] = Field(
        None,
        description="The file's path inside the repo (source huggingface).")
    revision: Optional[Annotated[str, AfterValidator(_revision)]] = Field(
        None,
        description="A branch, tag or commit of the repo; an extension needs a full 40-hex commit.")
    sha256: Optional[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        None,
        description="Expected SHA-256 of the file (64 hex); verified after download.")
    required: bool = Field(True, description="Fail the model sync if this model cannot be fetched.")


class ModelsConfig(Section):
    default_checkpoint: Optional[str] = Field(
        None,
        description="The checkpoint a WebUI loads first (a name of a checkpoint in items).")
    items: list[ModelSpec] = Field(
        default_factory=list,
        description="Models the model sync Job puts on the shared store.")


class LimitsConfig(Section):
    """Caps the policy pack enforces at preview time (the runtime GPU-hour quota is `budgets`)."""

    max_gpu_nodes: Annotated[int, Field(ge=0, le=10000)] = Field(
        16,
        description="Most GPU nodes the stack may be able to run; the policy pack refuses more.")
