"""What runs inside the cluster in batch mode: KEDA, the models volume, the per-runtime workers.

Each runtime is a pod of two containers: the WebUI API (one GPU, models read-only from EFS,
listening on loopback only) and the queue agent (images/queue-agent) that takes jobs from that
runtime's queue, drives the WebUI on 127.0.0.1, writes results to S3 and publishes the
completion notice. KEDA scales them from the queue: a ScaledJob (default: one job per message,
the pod ends when its job is done) or a ScaledObject over a Deployment of long-running agents.
The GPU NodePool consolidates only empty nodes, so consolidation never stops a generation;
drift, expiry and Spot interruptions drain the node, which is what the shutdown arithmetic
is for: the agent gets SIGTERM, finishes what fits and puts the rest back.

The WebUI is a native sidecar (an init container with `restartPolicy: Always`) in both modes:
on pod termination the kubelet stops the regular containers (the agent) first and the sidecars
only after them (Kubernetes docs "Sidecar Containers"; kubernetes/kubernetes#120620, 1.29+), so
the WebUI stays up while the agent finishes or releases its job. In job mode it also lets the
pod complete when the agent exits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_kubernetes.helm.v3 import Release, RepositoryOptsArgs

from components.config import AwsRuntimeConfig
from components.config.aws_instances import AGENT_MEMORY_LIMIT_MIB, AGENT_REQUESTS
from components.k8s.image_env import AGENT as AGENT_ENV
from components.k8s.image_env import WEBUI as WEBUI_ENV
from components.k8s.objects import KubeObject, meta
from components.k8s.pods import (
    GPU_RESOURCE,
    LOOPBACK,
    RUNTIME_LABEL,
    WEBUI_PORT,
    NodePlacement,
    env_list,
    restricted_container,
)

KEDA_CHART = "keda"
KEDA_REPOSITORY = "https://kedacore.github.io/charts"
KEDA_VERSION = "2.17.2"
KEDA_NAMESPACE = "keda"
KEDA_SERVICE_ACCOUNT = "keda-operator"
TRIGGER_AUTH = "keda-aws"
# The WebUI (pods.WEBUI_PORT) answers on the pod's loopback only: the agent is in the same
# pod, nothing else may drive the GPU (and the namespace's NetworkPolicy refuses all ingress).
WEBUI_HOST = LOOPBACK
MODELS_MOUNT = "/models"
SCRATCH_MOUNT = "/scratch"
MODELS_CLAIM = "models"
# The agent's SQS lease; its heartbeat renews it well before it runs out (at most half).
AGENT_LEASE_SECONDS = 300
AGENT_HEARTBEAT_SECONDS = 60
# Time for the WebUI to load its model on a fresh node (image pull is before this).
WEBUI_STARTUP_SECONDS = 900

# --- Shutdown arithmetic (Spot) -----------------------------------------------------------------
# EC2 gives a Spot instance a two-minute interruption notice (EC2 docs, "Spot Instance
# interruption notices"). Karpenter receives it through EventBridge -> SQS and drains the node
# (components/aws/karpenter.py); allow NOTICE_DELIVERY_SECONDS for that. The agent then has
# AGENT_SHUTDOWN_GRACE_SECONDS to finish a job that fits, and RELEASE_SECONDS to write results
# or release the message (ChangeMessageVisibility 0); after it the WebUI sidecar gets SIGTERM
# and the supervisor stops it within its stop grace (SDFLEET_STOP_GRACE_SECONDS, default 20).
SPOT_NOTICE_SECONDS = 120
NOTICE_DELIVERY_SECONDS = 15
RELEASE_SECONDS = 10
WEBUI_STOP_SECONDS = 20
AGENT_SHUTDOWN_GRACE_SECONDS = (SPOT_NOTICE_SECONDS - NOTICE_DELIVERY_SECONDS - RELEASE_SECONDS
                                - WEBUI_STOP_SECONDS)
POD_TERMINATION_GRACE_SECONDS = SPOT_NOTICE_SECONDS - NOTICE_DELIVERY_SECONDS

# --- KEDA scaling (kedacore/keda v2.17, pkg/scaling/executor/scale_jobs.go) ----------------------
# A ScaledJob creates `effectiveMaxScale` new Jobs per poll. maxScale is the trigger's target
# (messages / queueLength, capped at maxReplicaCount). With the "accurate" strategy it is
# `maxScale - pendingJobs` where a Job is pending until one of its pods is Running: the agent
# takes no message until its WebUI answers (minutes on a cold node), so every poll in between
# sees the same visible message and no pending Job, and starts another GPU Job
# (tests/program/aws/test_aws_keda.py shows the count). The "default" strategy is
# `maxScale - runningJobs` (running = not finished); counting in-flight messages too
# (scaleOnInFlight, KEDA aws-sqs-queue scaler), a message is counted once whether it waits or
# is held by a Job, so there is never more than one Job per message.
SCALING_STRATEGY = "default"
SCALE_ON_IN_FLIGHT = "true"


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


@dataclass(frozen=True)
class ModelVolumeArgs:
    namespace: str
    volume_handle: pulumi.Input[str]


class ModelVolume(pulumi.ComponentResource):
    """`sdfleet:k8s:ModelVolume`: the EFS volume and its claim, shared read-write by the sync
    Job and read-only by the workers."""

    def __init__(self, name: str, args: ModelVolumeArgs,
                 opts: pulumi.ResourceOptions | None = None):
        namespace, volume_handle = args.namespace, args.volume_handle
        super().__init__("sdfleet:k8s:ModelVolume", name, None, opts)
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
        self.claim_name = MODELS_CLAIM
        self.register_outputs({})


class BatchNetworkPolicy(pulumi.ComponentResource):
    """`sdfleet:k8s:BatchNetworkPolicy`: no pod of the batch namespace accepts any connection.

    Workers only make outgoing calls (SQS, S3, SNS); the WebUI is driven over the pod's own
    loopback, which NetworkPolicies do not see. Enforced by the VPC CNI's network policy agent
    (components/aws/cluster.py turns it on)."""

    def __init__(self, name: str, namespace: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:BatchNetworkPolicy", name, None, opts)
        self.policy = KubeObject(
            f"{name}-deny-ingress", "networking.k8s.io/v1", "NetworkPolicy",
            metadata=meta("deny-all-ingress", namespace),
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=pulumi.ResourceOptions(parent=self))
        self.register_outputs({})


@dataclass(frozen=True)
class RuntimeWorkloadArgs:
    runtime: AwsRuntimeConfig
    namespace: str
    webui_image: pulumi.Input[str]
    agent_image: pulumi.Input[str]
    queue_url: pulumi.Input[str]
    dead_letter_url: pulumi.Input[str]
    results_bucket: pulumi.Input[str]
    completion_topic_arn: pulumi.Input[str]
    region: str
    job_timeout_seconds: int
    max_receive_count: int
    # The GPU nodes, as the cloud layer labels and taints them (and what keeps a node up).
    placement: NodePlacement
    # The WebUI container's requests (the runtime's, or sized from the node: aws_instances).
    cpu: str
    memory: str
    allowed_image_hosts: list[str] = field(default_factory=list)
    models_claim: str = MODELS_CLAIM
    metrics_namespace: str | None = None   # CloudWatch namespace of the agent's job metrics


def agent_environment(a: RuntimeWorkloadArgs) -> dict[str, pulumi.Input[str]]:
    """The variables images/queue-agent/sdfleet_agent/settings.py reads."""
    job_mode = a.runtime.mode == "scaledjob"
    env: dict[str, pulumi.Input[str]] = {
        AGENT_ENV.QUEUE_URL: a.queue_url, AGENT_ENV.DEAD_LETTER_QUEUE_URL: a.dead_letter_url,
        AGENT_ENV.RUNTIME: a.runtime.name, AGENT_ENV.RESULTS_BUCKET: a.results_bucket,
        AGENT_ENV.COMPLETION_TOPIC_ARN: a.completion_topic_arn,
        "AWS_REGION": a.region,  # boto3's own name
        AGENT_ENV.AGENT_MODE: "job" if job_mode else "service",
        AGENT_ENV.WEBUI_FRAMEWORK: a.runtime.framework,
        AGENT_ENV.WEBUI_URL: f"http://{WEBUI_HOST}:{WEBUI_PORT}",
        AGENT_ENV.MODELS_ROOT: MODELS_MOUNT,
        AGENT_ENV.VISIBILITY_TIMEOUT_SECONDS: str(AGENT_LEASE_SECONDS),
        AGENT_ENV.HEARTBEAT_SECONDS: str(AGENT_HEARTBEAT_SECONDS),
        AGENT_ENV.JOB_TIMEOUT_SECONDS: str(a.job_timeout_seconds),
        # The queue's redrive maxReceiveCount: the last try is recorded as failed.
        AGENT_ENV.MAX_RECEIVE_COUNT: str(a.max_receive_count),
        AGENT_ENV.STARTUP_TIMEOUT_SECONDS: str(WEBUI_STARTUP_SECONDS),
        # What a Spot interruption leaves for a running job (shutdown arithmetic above).
        AGENT_ENV.SHUTDOWN_GRACE_SECONDS: str(AGENT_SHUTDOWN_GRACE_SECONDS),
    }
    if a.allowed_image_hosts:
        env[AGENT_ENV.ALLOWED_IMAGE_HOSTS] = ",".join(a.allowed_image_hosts)
    if a.metrics_namespace:
        env[AGENT_ENV.METRICS_NAMESPACE] = a.metrics_namespace
    return env


def webui_environment(a: RuntimeWorkloadArgs) -> dict[str, str]:
    """The variables the WebUI image's supervisor reads (images/webui/sdfleet_webui/
    supervisor.py, SupervisorConfig.from_env)."""
    # SDFLEET_LISTEN_HOST keeps every framework on loopback: the supervisor turns it into the
    # framework's own flag (sdfleet_webui/frameworks.py listen_args).
    return {WEBUI_ENV.FRAMEWORK: a.runtime.framework,
            WEBUI_ENV.LISTEN_HOST: WEBUI_HOST,
            WEBUI_ENV.WEBUI_PORT: str(WEBUI_PORT),
            WEBUI_ENV.MODELS_ROOT: MODELS_MOUNT,
            WEBUI_ENV.SCRATCH: SCRATCH_MOUNT,
            WEBUI_ENV.STOP_GRACE_SECONDS: str(WEBUI_STOP_SECONDS),
            # No Agones in batch mode.
            WEBUI_ENV.AGONES: "false"}


def trigger_metadata(a: RuntimeWorkloadArgs) -> dict[str, pulumi.Input[str]]:
    return {"queueURL": a.queue_url, "awsRegion": a.region,
            "queueLength": str(a.runtime.queue_length_per_replica),
            "activationQueueLength": str(a.runtime.activation_queue_length),
            # Both modes count in-flight messages: a ScaledJob's running Jobs hold theirs
            # (see SCALING_STRATEGY), a Deployment never scales in under a running job.
            "scaleOnInFlight": SCALE_ON_IN_FLIGHT}


class RuntimeWorkload(pulumi.ComponentResource):
    """`sdfleet:k8s:RuntimeWorkload`: a runtime's service account and KEDA-scaled workers."""

    def __init__(self, name: str, args: RuntimeWorkloadArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:k8s:RuntimeWorkload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        runtime, namespace = args.runtime, args.namespace
        job_mode = runtime.mode == "scaledjob"
        app = f"sdfleet-{runtime.name}"
        labels = {"app.kubernetes.io/name": app, RUNTIME_LABEL: runtime.name}
        service_account = agent_service_account(runtime.name)
        self.service_account = KubeObject(
            f"{name}-sa", "v1", "ServiceAccount", metadata=meta(service_account, namespace),
            automountServiceAccountToken=False, opts=child)

        models_read_only = {"name": "models", "mountPath": MODELS_MOUNT, "readOnly": True}
        agent = {
            "name": "agent", "image": args.agent_image,
            "env": env_list(agent_environment(args)),
            "resources": {"requests": {"cpu": f"{AGENT_REQUESTS[0]}m",
                                       "memory": f"{AGENT_REQUESTS[1]}Mi"},
                          "limits": {"memory": f"{AGENT_MEMORY_LIMIT_MIB}Mi"}},
            # The agent reads the models manifest (config name -> file) from the store.
            "volumeMounts": [models_read_only],
            "securityContext": restricted_container(seccomp=True, read_only_root=True),
        }
        webui = {
            "name": "webui", "image": args.webui_image,
            # A native sidecar: stopped only after the agent (module docstring).
            "restartPolicy": "Always",
            "env": env_list(webui_environment(args)),
            "resources": {"requests": {"cpu": args.cpu, "memory": args.memory,
                                       GPU_RESOURCE: "1"},
                          "limits": {"memory": args.memory, GPU_RESOURCE: "1"}},
            "volumeMounts": [models_read_only,
                             {"name": "scratch", "mountPath": SCRATCH_MOUNT}],
            # The runtime image chooses its user; it still gets no extra privileges.
            "securityContext": restricted_container(non_root=False, seccomp=True),
        }
        pod_spec: dict[str, Any] = {
            "serviceAccountName": service_account,
            **args.placement.pod_fields(),
            "terminationGracePeriodSeconds": POD_TERMINATION_GRACE_SECONDS,
            "initContainers": [webui],
            "containers": [agent],
            "volumes": [{"name": "models",
                         "persistentVolumeClaim": {"claimName": args.models_claim,
                                                   "readOnly": True}},
                        {"name": "scratch", "emptyDir": {"sizeLimit": runtime.scratch_size}}],
        }
        if job_mode:
            pod_spec["restartPolicy"] = "Never"
        template = {"metadata": {"labels": labels, "annotations": dict(args.placement.annotations)},
                    "spec": pod_spec}
        trigger = {"type": "aws-sqs-queue", "authenticationRef": {"name": TRIGGER_AUTH},
                   "metadata": trigger_metadata(args)}
        if job_mode:
            self.scaler = KubeObject(
                f"{name}-scaledjob", "keda.sh/v1alpha1", "ScaledJob",
                metadata=meta(app, namespace, labels),
                spec={"jobTargetRef": {"parallelism": 1, "completions": 1, "backoffLimit": 0,
                                       "activeDeadlineSeconds": args.job_timeout_seconds
                                       + WEBUI_STARTUP_SECONDS + 300,
                                       "template": template},
                      "pollingInterval": 10, "maxReplicaCount": runtime.max_replicas,
                      "successfulJobsHistoryLimit": 5, "failedJobsHistoryLimit": 10,
                      "scalingStrategy": {"strategy": SCALING_STRATEGY},
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
