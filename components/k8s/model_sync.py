"""The model sync Job, for both clouds: fills the shared model store once, so pods never
download on the hot path.

The model list (docs/contracts.md section 6) goes into a ConfigMap; both are named by a hash
of the list, so a new list gives a new Job (and an unchanged list never reruns one). Tokens
come from the stack's secret keys into a Secret mounted as files (the fetcher reads
`/var/run/sdfleet/{civitai,hf}-token`, images/webui/sdfleet_webui/fetch.py), never env values.

How long `pulumi up` waits: pulumi-kubernetes awaits a Job until it completes, 10 minutes by
default ("If the Job has not reached a Ready state after 10 minutes, it will time out",
pulumi-kubernetes batch/v1 Job docs, v4.24), overridable with the `customTimeouts` resource
option (pulumi/pulumi-kubernetes#672: customTimeouts first, then the `pulumi.com/timeoutSeconds`
annotation, pulumi/pulumi-kubernetes#457). An SDXL checkpoint alone is ~7 GB, so the wait is
derived from the list: `sync_budget_seconds`. The Job's own `activeDeadlineSeconds` is the same
budget, so Kubernetes stops the Job when Pulumi stops waiting for it.

Progress: the fetcher logs every `SDFLEET_FETCH_PROGRESS_SECONDS` (bytes done, rate) to its
stderr; a deployer follows it with `kubectl -n <namespace> logs -f job/<job name>` (the stack
exports the Job's name), while `pulumi up` shows the Job's await status.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Optional

import pulumi

from components.config import ModelsConfig, ModelSpec
from components.k8s.objects import KubeObject, meta
from components.k8s.pods import (
    APP_LABEL,
    IMAGE_PYTHON,
    WEBUI_GID,
    WEBUI_UID,
    NodePlacement,
    pod_security,
    restricted_container,
)

MODELS_FILE = "/etc/sdfleet/models.json"
MODELS_MOUNT = "/models"
TOKENS_DIR = "/var/run/sdfleet"
# File names the fetcher reads under TOKENS_DIR (images/webui/sdfleet_webui/fetch.py,
# FetchSettings.from_env: read_secret(..., "/var/run/sdfleet/civitai-token" / "hf-token")).
TOKEN_FILES = {"civitai": "civitai-token", "huggingface": "hf-token"}
# The fetcher runs with the WebUI image's own interpreter (pods.IMAGE_PYTHON), called by
# absolute path, so the command resolves whatever the image's ENTRYPOINT becomes.
FETCH_MODULE = "sdfleet_webui.fetch"
PROGRESS_SECONDS = 30

# Upper bounds of one file per kind, for the wait budget (largest common files: an SDXL
# checkpoint is 6.9 GB, an fp32 SD 1.5 one 7.7 GB; VAEs ~0.3 GB, LoRAs up to ~1 GB, ControlNet
# models up to 2.5 GB). A CivitAI entry without a kind is counted as a checkpoint.
KIND_BOUND_BYTES = {"checkpoint": 8 * 1024**3, "controlnet": 3 * 1024**3, "vae": 1024**3,
                    "lora": 1024**3, "embedding": 64 * 1024**2, "upscaler": 256 * 1024**2,
                    "extension": 512 * 1024**2}
# A download rate that any region reaches from Hugging Face or CivitAI into EFS/Filestore:
# deliberately low (10 MB/s), so the budget is generous rather than tight.
SLOW_RATE_BYTES_PER_SECOND = 10 * 1000**2
# Scheduling, the image pull (a multi-GB WebUI image) and the fetcher's own start.
START_SECONDS = 15 * 60
MAX_BUDGET_SECONDS = 12 * 3600


def models_document(models: ModelsConfig) -> str:
    """The model list JSON of docs/contracts.md section 6 (camelCase, unset fields left out)."""
    doc = {"defaultCheckpoint": models.default_checkpoint,
           "models": [m.model_dump(by_alias=True, exclude_none=True) for m in models.items]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def model_bound_bytes(model: ModelSpec) -> int:
    return KIND_BOUND_BYTES[model.kind or "checkpoint"]


def sync_budget_seconds(models: ModelsConfig) -> int:
    """How long the sync may take: start-up plus every file at a slow rate (fetched in parallel,
    but counted one after another), within MAX_BUDGET_SECONDS."""
    total = sum(model_bound_bytes(m) for m in models.items)
    return min(MAX_BUDGET_SECONDS, START_SECONDS + -(-total // SLOW_RATE_BYTES_PER_SECOND))


@dataclass(frozen=True)
class ModelSyncArgs:
    """What the cloud layer passes: where the store is and where the Job may run."""

    models: ModelsConfig
    namespace: str
    image: pulumi.Input[str]
    claim: pulumi.Input[str]
    # The store's folder for models inside the claim ("models" on a shared Filestore share;
    # None where the volume is already the models folder, e.g. an EFS access point).
    sub_path: Optional[str]
    # Nodes with room for the WebUI image (multi-GB) and its unpacked layers, as the cloud
    # layer labels and taints them (and what keeps such a node up during the download).
    placement: NodePlacement
    civitai_token: Optional[pulumi.Input[str]] = None
    huggingface_token: Optional[pulumi.Input[str]] = None


class ModelSync(pulumi.ComponentResource):
    """`sdfleet:k8s:ModelSync`: the model list, the token Secret and the fill Job."""

    def __init__(self, name: str, args: ModelSyncArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:ModelSync", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        document = models_document(args.models)
        self.digest = hashlib.sha256(document.encode()).hexdigest()[:10]
        versioned = f"{name}-{self.digest}"
        self.job_name = versioned
        self.budget_seconds = sync_budget_seconds(args.models)

        self.models_config = KubeObject(
            f"{versioned}-models", "v1", "ConfigMap", metadata=meta(versioned, args.namespace),
            data={"models.json": document}, immutable=True, opts=child)
        tokens = {TOKEN_FILES[source]: value for source, value in
                  (("civitai", args.civitai_token), ("huggingface", args.huggingface_token))
                  if value is not None}
        token_mounts: list[dict] = []
        token_volumes: list[dict] = []
        depends: list[pulumi.Resource] = [self.models_config]
        if tokens:
            self.tokens = KubeObject(
                f"{name}-tokens", "v1", "Secret", metadata=meta(f"{name}-tokens", args.namespace),
                type="Opaque", stringData={k: pulumi.Output.secret(v) for k, v in tokens.items()},
                opts=child)
            depends.append(self.tokens)
            token_mounts = [{"name": "tokens", "mountPath": TOKENS_DIR, "readOnly": True}]
            token_volumes = [{"name": "tokens", "secret": {"secretName": f"{name}-tokens",
                                                           "defaultMode": 0o400}}]
        models_mount: dict[str, Any] = {"name": "store", "mountPath": MODELS_MOUNT}
        if args.sub_path:
            models_mount["subPath"] = args.sub_path

        pod_spec: dict[str, Any] = {
            "restartPolicy": "OnFailure",
            **args.placement.pod_fields(),
            "automountServiceAccountToken": False,
            "securityContext": pod_security(WEBUI_UID, WEBUI_GID),
            "containers": [{
                "name": "fetch", "image": args.image,
                "command": [IMAGE_PYTHON, "-m", FETCH_MODULE,
                            "--models-file", MODELS_FILE, "--root", MODELS_MOUNT],
                "env": [{"name": "SDFLEET_FETCH_PROGRESS_SECONDS",
                         "value": str(PROGRESS_SECONDS)}],
                "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                              "limits": {"memory": "2Gi"}},
                "volumeMounts": [models_mount,
                                 {"name": "models-list", "mountPath": "/etc/sdfleet",
                                  "readOnly": True},
                                 *token_mounts],
                "securityContext": restricted_container()}],
            "volumes": [{"name": "store", "persistentVolumeClaim": {"claimName": args.claim}},
                        {"name": "models-list", "configMap": {"name": versioned}},
                        *token_volumes],
        }
        template_meta: dict[str, Any] = {"labels": {APP_LABEL: "model-sync"}}
        if args.placement.annotations:
            template_meta["annotations"] = dict(args.placement.annotations)
        self.job = KubeObject(
            versioned, "batch/v1", "Job",
            metadata=meta(versioned, args.namespace, {"sdfleet.dev/models-digest": self.digest},
                          {"pulumi.com/timeoutSeconds": str(self.budget_seconds)}),
            spec={"backoffLimit": 4, "activeDeadlineSeconds": self.budget_seconds,
                  "template": {"metadata": template_meta, "spec": pod_spec}},
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=depends,
                custom_timeouts=pulumi.CustomTimeouts(create=f"{self.budget_seconds}s",
                                                      update=f"{self.budget_seconds}s")))
        self.register_outputs({"job": versioned, "budgetSeconds": self.budget_seconds})
