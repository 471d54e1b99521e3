"""What runs inside the cluster in batch mode: KEDA, the per-runtime workers, model sync.

Each runtime is a pod of two containers: the WebUI API (one GPU, models read-only from
EFS) and the queue agent (images/queue-agent) that takes jobs from that runtime's queue,
drives the WebUI on loopback, writes results to S3 and publishes the completion notice.
KEDA scales them from the queue: a ScaledJob (default: one job per message, the pod ends
when its job is done) or a ScaledObject over a Deployment of long-running agents. Pods are
annotated `karpenter.sh/do-not-disrupt`, so no consolidation or drift stops a generation.

The models list of the config becomes `/etc/sdfleet/models.json` (docs/contracts.md
section 6) for a Job that fills the shared EFS volume once; workers never download.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pulumi
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from components.config import AwsRuntimeConfig, ModelsConfig
from components.k8s.objects import KubeObject, meta

KEDA_CHART = "keda"
KEDA_REPOSITORY = "https://kedacore.github.io/charts"
KEDA_VERSION = "2.17.2"
KEDA_NAMESPACE = "keda"
KEDA_SERVICE_ACCOUNT = "keda-operator"
TRIGGER_AUTH = "keda-aws"
WEBUI_PORT = 7860
MODELS_MOUNT = "/models"
MODELS_CLAIM = "models"
MODELS_FILE = "/etc/sdfleet/models.json"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
# The agent's SQS lease; its heartbeat renews it well before it runs out (at most half).
AGENT_LEASE_SECONDS = 300
AGENT_HEARTBEAT_SECONDS = 60
# Time for the WebUI to load its model on a fresh node (image pull is before this).
WEBUI_STARTUP_SECONDS = 900
RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
              "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def models_document(models: ModelsConfig) -> dict[str, Any]:
    """The model list JSON of docs/contracts.md section 6 (camelCase, unset fields left out)."""
    return {"defaultCheckpoint": models.default_checkpoint,
            "models": [m.model_dump(by_alias=True, exclude_none=True) for m in models.items]}


def agent_service_account(runtime: str) -> str:
    return f"agent-{runtime}"


class Keda(pulumi.ComponentResource):
    """`sdfleet:k8s:Keda`: the KEDA operator (pinned Helm release) on the system nodes."""

    def __init__(self, name: str, system_selector: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:Keda", name, None, opts)
        self.release = Release(
            name, name="keda", chart=KEDA_CHART, version=KEDA_VERSION,
            repository_opts=RepositoryOptsArgs(repo=KEDA_REPOSITORY),
            namespace=KEDA_NAMESPACE, create_namespace=True,
            values={"serviceAccount": {"operator": {"name": KEDA_SERVICE_ACCOUNT}},
                    "nodeSelector": system_selector,
                    "podSecurityContext": {"operator": {"runAsNonRoot": True}}},
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


class RuntimeWorkload(pulumi.ComponentResource):
    """`sdfleet:k8s:RuntimeWorkload`: a runtime's service account and KEDA-scaled workers."""

    def __init__(self, name: str, runtime: AwsRuntimeConfig, namespace: str, *,
                 webui_image: pulumi.Input[str], agent_image: pulumi.Input[str],
                 queue_url: pulumi.Input[str], dead_letter_url: pulumi.Input[str],
                 results_bucket: pulumi.Input[str], completion_topic_arn: pulumi.Input[str],
                 region: str, job_timeout_seconds: int, allowed_image_hosts: list[str],
                 node_selector: dict[str, str], do_not_disrupt: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:RuntimeWorkload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        job_mode = runtime.mode == "scaledjob"
        app = f"sdfleet-{runtime.name}"
        labels = {"app.kubernetes.io/name": app, "sdfleet.dev/runtime": runtime.name}
        service_account = agent_service_account(runtime.name)
        self.service_account = KubeObject(
            f"{name}-sa", "v1", "ServiceAccount", metadata=meta(service_account, namespace),
            automountServiceAccountToken=False, opts=child)

        env = {"QUEUE_URL": queue_url, "DEAD_LETTER_QUEUE_URL": dead_letter_url,
               "RUNTIME": runtime.name, "RESULTS_BUCKET": results_bucket,
               "COMPLETION_TOPIC_ARN": completion_topic_arn, "AWS_REGION": region,
               "AGENT_MODE": "job" if job_mode else "service",
               "WEBUI_URL": f"http://127.0.0.1:{WEBUI_PORT}",
               "VISIBILITY_TIMEOUT_SECONDS": str(AGENT_LEASE_SECONDS),
               "HEARTBEAT_SECONDS": str(AGENT_HEARTBEAT_SECONDS),
               "JOB_TIMEOUT_SECONDS": str(job_timeout_seconds),
               "STARTUP_TIMEOUT_SECONDS": str(WEBUI_STARTUP_SECONDS),
               # On SIGTERM a running job may finish; the pod's grace period covers it.
               "SHUTDOWN_GRACE_SECONDS": str(job_timeout_seconds)}
        if allowed_image_hosts:
            env["ALLOWED_IMAGE_HOSTS"] = ",".join(allowed_image_hosts)
        agent = {
            "name": "agent", "image": agent_image,
            "env": [{"name": k, "value": v} for k, v in env.items()],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"memory": "512Mi"}},
            "securityContext": {**RESTRICTED, "readOnlyRootFilesystem": True},
        }
        webui = {
            "name": "webui", "image": webui_image,
            "ports": [{"name": "http", "containerPort": WEBUI_PORT}],
            "resources": {"requests": {"cpu": runtime.cpu, "memory": runtime.memory,
                                       "nvidia.com/gpu": "1"},
                          "limits": {"memory": runtime.memory, "nvidia.com/gpu": "1"}},
            "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}],
            # The runtime image chooses its user; it still gets no extra privileges.
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}},
        }
        pod_spec: dict[str, Any] = {
            "serviceAccountName": service_account,
            "nodeSelector": node_selector,
            "tolerations": [GPU_TOLERATION],
            "terminationGracePeriodSeconds": job_timeout_seconds + 60,
            "volumes": [{"name": "models",
                         "persistentVolumeClaim": {"claimName": MODELS_CLAIM, "readOnly": True}}],
        }
        if job_mode:
            # The WebUI is a native sidecar: when the agent (the job) exits, the pod completes.
            pod_spec.update(restartPolicy="Never",
                            initContainers=[{**webui, "restartPolicy": "Always"}],
                            containers=[agent])
        else:
            pod_spec["containers"] = [webui, agent]
        template = {"metadata": {"labels": labels, "annotations": do_not_disrupt},
                    "spec": pod_spec}

        trigger = {
            "type": "aws-sqs-queue",
            "authenticationRef": {"name": TRIGGER_AUTH},
            "metadata": {
                "queueURL": queue_url, "awsRegion": region,
                "queueLength": str(runtime.queue_length_per_replica),
                "activationQueueLength": str(runtime.activation_queue_length),
                # A ScaledJob's running jobs hold their messages in flight: counting them would
                # start a second job per message, so it counts visible messages and KEDA's
                # "accurate" strategy subtracts jobs not yet running. A Deployment counts
                # in-flight messages, so it never scales in under a running job.
                "scaleOnInFlight": "false" if job_mode else "true",
            },
        }
        if job_mode:
            self.scaler = KubeObject(
                f"{name}-scaledjob", "keda.sh/v1alpha1", "ScaledJob",
                metadata=meta(app, namespace, labels),
                spec={"jobTargetRef": {"parallelism": 1, "completions": 1, "backoffLimit": 0,
                                       "activeDeadlineSeconds": job_timeout_seconds
                                       + WEBUI_STARTUP_SECONDS + 300,
                                       "template": template},
                      "pollingInterval": 10, "maxReplicaCount": runtime.max_replicas,
                      "successfulJobsHistoryLimit": 5, "failedJobsHistoryLimit": 10,
                      "scalingStrategy": {"strategy": "accurate"},
                      "triggers": [trigger]},
                opts=child)
        else:
            self.deployment = KubeObject(
                f"{name}-deployment", "apps/v1", "Deployment", metadata=meta(app, namespace, labels),
                spec={"replicas": 0, "selector": {"matchLabels": labels}, "template": template},
                opts=pulumi.ResourceOptions(parent=self, ignore_changes=["spec.replicas"]))
            self.scaler = KubeObject(
                f"{name}-scaledobject", "keda.sh/v1alpha1", "ScaledObject",
                metadata=meta(app, namespace, labels),
                spec={"scaleTargetRef": {"name": app}, "minReplicaCount": 0,
                      "maxReplicaCount": runtime.max_replicas, "pollingInterval": 10,
                      "cooldownPeriod": 300, "triggers": [trigger]},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]))
        self.register_outputs({})


class ModelSync(pulumi.ComponentResource):
    """`sdfleet:k8s:ModelSync`: the EFS volume and claim, the model list, the fill Job."""

    def __init__(self, name: str, namespace: str, volume_handle: pulumi.Input[str],
                 models: ModelsConfig, image: pulumi.Input[str], node_selector: dict[str, str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:ModelSync", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        volume_name = f"{namespace}-models"
        self.volume = KubeObject(
            f"{name}-pv", "v1", "PersistentVolume", metadata=meta(volume_name),
            spec={"capacity": {"storage": "1Ti"}, "accessModes": ["ReadWriteMany"],
                  "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                  "csi": {"driver": "efs.csi.aws.com", "volumeHandle": volume_handle},
                  "mountOptions": ["tls"]},
            opts=child)
        self.claim = KubeObject(
            f"{name}-pvc", "v1", "PersistentVolumeClaim", metadata=meta(MODELS_CLAIM, namespace),
            spec={"accessModes": ["ReadWriteMany"], "storageClassName": "",
                  "volumeName": volume_name, "resources": {"requests": {"storage": "1Ti"}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.volume]))

        document = json.dumps(models_document(models), indent=2, sort_keys=True)
        digest = hashlib.sha256(document.encode()).hexdigest()[:10]
        self.config_map = KubeObject(
            f"{name}-list", "v1", "ConfigMap", metadata=meta(f"models-{digest}", namespace),
            data={"models.json": document}, immutable=True, opts=child)
        secrets = pulumi.Config("sdfleet")
        tokens = {env: secrets.get_secret(key) for env, key in
                  (("CIVITAI_TOKEN", "civitaiToken"), ("HF_TOKEN", "huggingfaceToken"))}
        tokens = {env: value for env, value in tokens.items() if value is not None}
        env: list[dict] = []
        if tokens:
            KubeObject(f"{name}-tokens", "v1", "Secret", metadata=meta("model-tokens", namespace),
                       type="Opaque", stringData=tokens, opts=child)
            env = [{"name": key, "valueFrom": {"secretKeyRef": {"name": "model-tokens", "key": key}}}
                   for key in tokens]
        # Jobs are immutable: a changed list is a new Job (named by its digest) that runs again.
        self.job = KubeObject(
            f"{name}-job", "batch/v1", "Job", metadata=meta(f"model-sync-{digest}", namespace),
            spec={"backoffLimit": 4, "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "model-sync"}},
                "spec": {
                    "restartPolicy": "OnFailure", "nodeSelector": node_selector,
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                    "containers": [{
                        "name": "fetch", "image": image,
                        "command": ["python", "-m", "sdfleet_webui.fetch",
                                    "--models-file", MODELS_FILE, "--root", MODELS_MOUNT],
                        "env": env,
                        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"memory": "2Gi"}},
                        "securityContext": RESTRICTED,
                        "volumeMounts": [{"name": "models", "mountPath": MODELS_MOUNT},
                                         {"name": "list", "mountPath": "/etc/sdfleet",
                                          "readOnly": True}]}],
                    "volumes": [{"name": "models",
                                 "persistentVolumeClaim": {"claimName": MODELS_CLAIM}},
                                {"name": "list", "configMap": {"name": f"models-{digest}"}}]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.claim, self.config_map]))
        self.register_outputs({})
