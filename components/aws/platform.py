"""The EKS batch platform (docs/architecture.md section 4), assembled from small components.

API Gateway (API key, usage plan) -> submit Lambda -> SNS -> one SQS queue per runtime (each
with a DLQ) -> KEDA ScaledJob/ScaledObject -> GPU nodes from Karpenter -> queue agent beside
the WebUI API -> results in S3 -> completion notice on SNS. Models on EFS.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.aws.alarms import QueueAlarms, QueueAlarmsArgs, agent_namespace
from components.aws.api import JobApi, JobApiArgs
from components.aws.cluster import SYSTEM_LABELS, EksCluster, EksClusterArgs
from components.aws.images import ImageBuilds, ImageBuildsArgs
from components.aws.karpenter import GPU_PLACEMENT, Karpenter, KarpenterArgs
from components.aws.network import Network, NetworkArgs
from components.aws.pod_identity import WorkloadIdentity, WorkloadIdentityArgs
from components.aws.queues import JobQueues, JobQueuesArgs, visibility_timeout
from components.aws.storage import (
    RESULTS_PREFIX,
    UPLOADS_PREFIX,
    ModelStore,
    ModelStoreArgs,
    ResultsBucket,
    ResultsBucketArgs,
)
from components.aws.tags import allow, tags_for
from components.config import StackConfig
from components.config.aws_instances import default_worker
from components.k8s.batch import (
    KEDA_NAMESPACE,
    KEDA_SERVICE_ACCOUNT,
    TRIGGER_AUTH,
    BatchNetworkPolicy,
    Keda,
    ModelVolume,
    ModelVolumeArgs,
    RuntimeWorkload,
    RuntimeWorkloadArgs,
    agent_service_account,
)
from components.k8s.model_sync import ModelSync, ModelSyncArgs
from components.k8s.objects import KubeObject, meta

BATCH_NAMESPACE = "sdfleet-batch"
AGENT_IMAGE = "queue-agent"


def webui_image_name(framework: str) -> str:
    """The image (components/images.py) that runs a runtime's framework."""
    return f"webui-{framework}"


def needed_images(config) -> list[str]:
    """Every image a batch stack runs: one WebUI image per framework in use, and the agent."""
    frameworks = dict.fromkeys(rt.framework for rt in config.runtimes)
    return [webui_image_name(f) for f in frameworks] + [AGENT_IMAGE]


class AwsPlatform(pulumi.ComponentResource):
    """`sdfleet:aws:Platform`: everything one `cloud: aws` stack stands up."""

    def __init__(self, name: str, stack: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:Platform", name, None, opts)
        p = stack.platform
        config = p.aws
        region = stack.aws_region
        labels = dict(p.labels)
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output().account_id
        cluster_name = f"{name}-eks"

        self.network = Network(name, NetworkArgs(config.network, region, cluster_name, labels), opts=child)
        self.cluster = EksCluster(cluster_name, EksClusterArgs(
                config.cluster, self.network, region, labels), opts=child)
        self.k8s = k8s.Provider(
            f"{name}-k8s", kubeconfig=self.cluster.kubeconfig, enable_server_side_apply=True,
            delete_unreachable=False,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.cluster.system_nodes]))
        on_cluster = pulumi.ResourceOptions(parent=self, provider=self.k8s)

        # Images first: every workload below takes its reference from a finished build.
        self.images = ImageBuilds(f"{name}", ImageBuildsArgs(
            needed=needed_images(config), prebuilt=dict(p.images.prebuilt), region=region,
            account=account, labels=labels,
            docker_hub_credential=p.images.docker_hub_credential), opts=child)
        image = self.images.references

        self.queues = JobQueues(f"{name}", JobQueuesArgs(config, labels), opts=child)
        metrics_namespace = agent_namespace(name)
        self.alarms = QueueAlarms(f"{name}-ops", QueueAlarmsArgs(
            queues=self.queues, region=region, timeout_seconds=config.jobs.timeout_seconds,
            labels=labels, namespace=metrics_namespace, alert_email=config.jobs.alert_email),
            opts=child)
        self.results = ResultsBucket(f"{name}-results", ResultsBucketArgs(config.jobs, labels), opts=child)
        self.models = ModelStore(f"{name}-models", ModelStoreArgs(
                self.network, config.network.vpc_cidr, labels), opts=child)
        self.api = JobApi(name, JobApiArgs(
            config=config, models=p.models, jobs_topic_arn=self.queues.jobs_topic.arn,
            results_bucket=self.results.name, results_arn=self.results.arn, labels=labels),
            opts=child)

        self.karpenter = Karpenter(f"{name}-karpenter", KarpenterArgs(
            gpu=config.gpu, cluster=self.cluster, network=self.network, region=region,
            account=account, labels=labels, k8s=self.k8s,
            job_grace_seconds=visibility_timeout(config.jobs)), opts=child)

        # KEDA reads queue depth and nothing else.
        self.keda_identity = WorkloadIdentity(f"{name}-keda", WorkloadIdentityArgs(
            cluster_name=self.cluster.cluster.name, namespace=KEDA_NAMESPACE,
            service_account=KEDA_SERVICE_ACCOUNT,
            statements=[allow(["sqs:GetQueueAttributes"],
                              [q.queue.arn for q in self.queues.runtimes.values()])],
            tags=tags_for(labels, f"{name}-keda")), opts=child)
        self.keda = Keda(f"{name}-keda", SYSTEM_LABELS,
                         opts=pulumi.ResourceOptions(parent=self, provider=self.k8s,
                                                     depends_on=[self.keda_identity]))

        namespace = KubeObject(f"{name}-batch-ns", "v1", "Namespace",
                               metadata=meta(BATCH_NAMESPACE), opts=on_cluster)
        trigger_auth = KubeObject(
            f"{name}-keda-auth", "keda.sh/v1alpha1", "TriggerAuthentication",
            metadata=meta(TRIGGER_AUTH, BATCH_NAMESPACE),
            # `aws` pod identity with the default owner: KEDA's own role, not the workers'.
            spec={"podIdentity": {"provider": "aws"}},
            opts=pulumi.ResourceOptions(parent=self, provider=self.k8s,
                                        depends_on=[namespace, self.keda]))
        BatchNetworkPolicy(f"{name}-batch-policy", BATCH_NAMESPACE,
                           opts=pulumi.ResourceOptions(parent=self, provider=self.k8s,
                                                       depends_on=[namespace]))
        self.model_volume = ModelVolume(f"{name}-models", ModelVolumeArgs(
                BATCH_NAMESPACE, self.models.volume_handle),
                opts=pulumi.ResourceOptions(parent=self, provider=self.k8s,
                                        depends_on=[namespace, self.cluster.efs_csi,
                                                    *self.models.mount_targets]))
        # The sync runs on a GPU node: the system nodes' disk is too small for a multi-GB
        # WebUI image, a GPU node has DATA_VOLUME_GB for it (components/aws/karpenter.py), and
        # the first worker on that node then finds the image already pulled. It requests no GPU,
        # and is not disrupted by consolidation mid-download.
        self.model_sync = ModelSync(f"{name}-model-sync", ModelSyncArgs(
            models=p.models, namespace=BATCH_NAMESPACE,
            image=image[webui_image_name(config.runtimes[0].framework)],
            claim=self.model_volume.claim_name, sub_path=None,
            placement=GPU_PLACEMENT,
            civitai_token=stack.secrets.civitai_token,
            huggingface_token=stack.secrets.huggingface_token),
            opts=pulumi.ResourceOptions(parent=self, provider=self.k8s,
                                        depends_on=[self.model_volume, self.karpenter.node_pool]))

        self.runtimes = {}
        default_cpu, default_memory = default_worker(list(config.gpu.families))
        for rt in config.runtimes:
            queue = self.queues.runtimes[rt.name]
            WorkloadIdentity(f"{name}-agent-{rt.name}", WorkloadIdentityArgs(
                cluster_name=self.cluster.cluster.name, namespace=BATCH_NAMESPACE,
                service_account=agent_service_account(rt.name),
                statements=[
                    allow(["sqs:ReceiveMessage", "sqs:ChangeMessageVisibility",
                           "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [queue.queue.arn]),
                    allow(["sqs:SendMessage"], [queue.dead_letter.arn]),
                    allow(["s3:PutObject"],
                          [pulumi.Output.concat(self.results.arn, f"/{RESULTS_PREFIX}*")]),
                    # Results (idempotent reruns) and clients' init images (their uploads).
                    allow(["s3:GetObject"],
                          [pulumi.Output.concat(self.results.arn, f"/{RESULTS_PREFIX}*"),
                           pulumi.Output.concat(self.results.arn, f"/{UPLOADS_PREFIX}*")]),
                    # So a missing result.json reads as 404 (not yet written), not 403.
                    allow(["s3:ListBucket"], [self.results.arn]),
                    allow(["sns:Publish"], [self.queues.completions_topic.arn]),
                    # Its job metrics, in the stack's namespace only (PutMetricData has no
                    # resource to scope; the namespace condition key does it).
                    allow(["cloudwatch:PutMetricData"], ["*"],
                          StringEquals={"cloudwatch:namespace": metrics_namespace})],
                tags=tags_for(labels, f"{name}-agent-{rt.name}")), opts=child)
            self.runtimes[rt.name] = RuntimeWorkload(f"{name}-{rt.name}", RuntimeWorkloadArgs(
                runtime=rt, namespace=BATCH_NAMESPACE,
                webui_image=image[webui_image_name(rt.framework)], agent_image=image[AGENT_IMAGE],
                queue_url=queue.queue.url, dead_letter_url=queue.dead_letter.url,
                results_bucket=self.results.name,
                completion_topic_arn=self.queues.completions_topic.arn, region=region,
                job_timeout_seconds=config.jobs.timeout_seconds,
                max_receive_count=config.jobs.max_receive_count,
                allowed_image_hosts=list(config.api.allowed_image_hosts),
                metrics_namespace=metrics_namespace,
                placement=GPU_PLACEMENT, models_claim=self.model_volume.claim_name,
                cpu=rt.cpu or default_cpu, memory=rt.memory or default_memory),
                opts=pulumi.ResourceOptions(
                    parent=self, provider=self.k8s,
                    depends_on=[namespace, trigger_auth, self.model_volume,
                                self.karpenter.node_pool]))

        self.outputs = {
            "apiUrl": self.api.url,
            "apiKeyId": pulumi.Output.secret(self.api.api_key.id),
            # Attach to the IAM users or roles that submit jobs (requests are SigV4-signed).
            "apiClientPolicyArn": self.api.client_policy.arn,
            "resultsBucket": self.results.name,
            "completionTopicArn": self.queues.completions_topic.arn,
            "jobsTopicArn": self.queues.jobs_topic.arn,
            "queueUrls": {rt: q.queue.url for rt, q in self.queues.runtimes.items()},
            "clusterName": self.cluster.name,
            "kubeconfig": self.cluster.kubeconfig,
            "modelsFileSystemId": self.models.file_system.id,
            # Follow the model download: kubectl -n sdfleet-batch logs -f job/<this name>.
            "modelSyncJob": self.model_sync.job_name,
        }
        self.register_outputs(self.outputs)
