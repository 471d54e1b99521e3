"""Job routing: one input SNS topic, one SQS queue per runtime, a completion topic.

SNS delivers a job only to the queue whose filter policy matches the message's `runtime`
attribute (raw delivery: the queue body is the job JSON the submit Lambda built). The API
refuses unknown runtimes, so no job is published that no queue takes.

Every queue has a dead-letter queue: after `aws.jobs.maxReceiveCount` receives a message stops
coming back and waits there for a person. A queue's visibility timeout is longer than a job
may run, so a message never reappears (and runs twice) while its job is still working; the
agent also extends it while it runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.tags import allow, policy_json, tags_for
from components.config import AWS_VISIBILITY_MARGIN_SECONDS, AwsConfig, AwsJobsConfig

# The longest SQS keeps a message: a dead-lettered job stays for two weeks of inspection.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
QUEUE_RETENTION_SECONDS = 4 * 24 * 3600
LONG_POLL_SECONDS = 20


def visibility_timeout(jobs: AwsJobsConfig) -> int:
    """A queue's visibility timeout: the job timeout plus the margin (within SQS's 12 hours)."""
    return jobs.timeout_seconds + AWS_VISIBILITY_MARGIN_SECONDS


def queue_with_dead_letter(resource_name: str, queue_name: str, *, max_receive_count: int,
                           labels: dict[str, str], parent: pulumi.Resource,
                           extra_tags: dict[str, str] | None = None,
                           **queue_args) -> tuple[aws.sqs.Queue, aws.sqs.Queue]:
    """A queue (encrypted) and its own dead-letter queue, which only it may redrive into.

    Every queue of the stack is made here, so none is ever without a dead-letter queue.
    """
    child = pulumi.ResourceOptions(parent=parent)
    extra_tags = extra_tags or {}
    dead_letter = aws.sqs.Queue(
        f"{resource_name}-dlq", name=f"{queue_name}-dlq",
        message_retention_seconds=DLQ_RETENTION_SECONDS, sqs_managed_sse_enabled=True,
        tags=tags_for(labels, f"{queue_name}-dlq", **extra_tags), opts=child)
    queue = aws.sqs.Queue(
        resource_name, name=queue_name, sqs_managed_sse_enabled=True,
        redrive_policy=pulumi.Output.json_dumps({"deadLetterTargetArn": dead_letter.arn,
                                                 "maxReceiveCount": max_receive_count}),
        tags=tags_for(labels, queue_name, **extra_tags), opts=child, **queue_args)
    aws.sqs.RedriveAllowPolicy(
        f"{resource_name}-dlq", queue_url=dead_letter.url,
        redrive_allow_policy=pulumi.Output.json_dumps({
            "redrivePermission": "byQueue", "sourceQueueArns": [queue.arn]}),
        opts=child)
    return queue, dead_letter


@dataclass(frozen=True)
class RuntimeQueueArgs:
    runtime: str
    config: AwsConfig
    topic: aws.sns.Topic
    labels: dict[str, str]


class RuntimeQueue(pulumi.ComponentResource):
    """`sdfleet:aws:RuntimeQueue`: a runtime's queue, its DLQ and its topic subscription."""

    def __init__(self, name: str, args: RuntimeQueueArgs,
                 opts: pulumi.ResourceOptions | None = None):
        runtime, config, topic, labels = args.runtime, args.config, args.topic, args.labels
        super().__init__("sdfleet:aws:RuntimeQueue", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.runtime = runtime
        self.queue, self.dead_letter = queue_with_dead_letter(
            name, name, max_receive_count=config.jobs.max_receive_count, labels=labels, parent=self,
            extra_tags={"runtime": runtime},
            visibility_timeout_seconds=visibility_timeout(config.jobs),
            message_retention_seconds=QUEUE_RETENTION_SECONDS,
            receive_wait_time_seconds=LONG_POLL_SECONDS)
        # Only the input topic may send to the queue.
        aws.sqs.QueuePolicy(
            f"{name}-from-topic", queue_url=self.queue.url,
            policy=policy_json([{
                "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                "Action": ["sqs:SendMessage"], "Resource": [self.queue.arn],
                "Condition": {"ArnEquals": {"aws:SourceArn": topic.arn}}}]),
            opts=child)
        self.subscription = aws.sns.TopicSubscription(
            f"{name}-subscription", topic=topic.arn, protocol="sqs", endpoint=self.queue.arn,
            raw_message_delivery=True, filter_policy_scope="MessageAttributes",
            filter_policy=json.dumps({"runtime": [runtime]}), opts=child)
        self.register_outputs({"queueUrl": self.queue.url, "deadLetterUrl": self.dead_letter.url})


@dataclass(frozen=True)
class JobQueuesArgs:
    config: AwsConfig
    labels: dict[str, str]


class JobQueues(pulumi.ComponentResource):
    """`sdfleet:aws:JobQueues`: input topic, per-runtime queues, completion topic."""

    def __init__(self, name: str, args: JobQueuesArgs,
                 opts: pulumi.ResourceOptions | None = None):
        config, labels = args.config, args.labels
        super().__init__("sdfleet:aws:JobQueues", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The AWS managed SNS key: SNS itself decrypts to deliver, so subscribers need no grant.
        self.jobs_topic = aws.sns.Topic(
            f"{name}-jobs", name=f"{name}-jobs", kms_master_key_id="alias/aws/sns",
            tags=tags_for(labels, f"{name}-jobs"), opts=child)
        self.completions_topic = aws.sns.Topic(
            f"{name}-completions", name=f"{name}-completions", kms_master_key_id="alias/aws/sns",
            tags=tags_for(labels, f"{name}-completions"), opts=child)
        self.runtimes = {
            rt.name: RuntimeQueue(f"{name}-{rt.name}", RuntimeQueueArgs(
                    rt.name, config, self.jobs_topic, labels), opts=child)
            for rt in config.runtimes
        }
        self.register_outputs({"jobsTopicArn": self.jobs_topic.arn,
                               "completionsTopicArn": self.completions_topic.arn})

    def publish_statement(self) -> dict:
        return allow(["sns:Publish"], [self.jobs_topic.arn])
