"""The model sync Job: fills the shared model store once, so pods never download on the hot path.

The model list (docs/contracts.md section 6) goes into a ConfigMap; both are named by a hash
of the list, so a new list gives a new Job (and an unchanged list never reruns one). Tokens
come from the stack's secret keys into a Secret, never into the list or the Job's env values.
"""

from __future__ import annotations

import hashlib
import json

import pulumi

from components.config import ModelsConfig
from components.k8s.objects import KubeObject, meta

MODELS_FILE = "/etc/sdfleet/models.json"
TOKENS_DIR = "/var/run/sdfleet"


def models_document(models: ModelsConfig) -> str:
    doc = {"defaultCheckpoint": models.default_checkpoint,
           "models": [m.model_dump(by_alias=True, exclude_none=True) for m in models.items]}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


class ModelSync(pulumi.ComponentResource):
    """`sdfleet:k8s:ModelSync`."""

    def __init__(self, name: str, models: ModelsConfig, namespace: str, image: str, claim: str,
                 node_selector: dict, civitai_token: pulumi.Input[str] | None,
                 huggingface_token: pulumi.Input[str] | None,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:ModelSync", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        document = models_document(models)
        self.digest = hashlib.sha256(document.encode()).hexdigest()[:10]
        versioned = f"{name}-{self.digest}"

        self.models_config = KubeObject(
            f"{versioned}-models", "v1", "ConfigMap", metadata=meta(f"{versioned}", namespace),
            data={"models.json": document}, opts=child)
        # Token files the fetcher reads (images/webui README); never env values.
        tokens = {k: v for k, v in (("civitai-token", civitai_token),
                                    ("hf-token", huggingface_token)) if v is not None}
        token_mounts, token_volumes = [], []
        if tokens:
            KubeObject(f"{name}-tokens", "v1", "Secret", metadata=meta(f"{name}-tokens", namespace),
                       type="Opaque", stringData={k: pulumi.Output.secret(v) for k, v in tokens.items()},
                       opts=child)
            token_mounts = [{"name": "tokens", "mountPath": TOKENS_DIR, "readOnly": True}]
            token_volumes = [{"name": "tokens", "secret": {"secretName": f"{name}-tokens",
                                                           "defaultMode": 0o400}}]

        self.job = KubeObject(
            f"{versioned}", "batch/v1", "Job",
            metadata=meta(versioned, namespace, {"sdfleet.dev/models-digest": self.digest}),
            spec={"backoffLimit": 4, "activeDeadlineSeconds": 6 * 3600,
                  "template": {"metadata": {"labels": {"sdfleet.dev/app": "model-sync"}}, "spec": {
                      "restartPolicy": "OnFailure",
                      "nodeSelector": node_selector,
                      "automountServiceAccountToken": False,
                      "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                          "runAsNonRoot": True,
                                          "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{
                          "name": "fetch", "image": image,
                          "args": ["sdfleet_webui.fetch", "--models-file", MODELS_FILE,
                                   "--root", "/models"],
                          "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                        "limits": {"memory": "2Gi"}},
                          "volumeMounts": [
                              {"name": "shared", "mountPath": "/models", "subPath": "models"},
                              {"name": "models-list", "mountPath": "/etc/sdfleet", "readOnly": True},
                              *token_mounts],
                          "securityContext": {"allowPrivilegeEscalation": False,
                                              "capabilities": {"drop": ["ALL"]}}}],
                      "volumes": [
                          {"name": "shared", "persistentVolumeClaim": {"claimName": claim}},
                          {"name": "models-list", "configMap": {"name": versioned}},
                          *token_volumes]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.models_config]))
        self.register_outputs({"job": versioned})
