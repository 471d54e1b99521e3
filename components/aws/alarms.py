"""What the EKS variant's operators see: a CloudWatch dashboard of the job queues and alarms.

Per runtime: a message in its dead-letter queue (a job failed `jobs.maxReceiveCount` times),
and its oldest waiting job older than twice the job timeout (the workers are not keeping up, or
no GPU node comes). The alarms publish to one SNS topic; `aws.alertEmail` subscribes an address.
SQS publishes these metrics itself (namespace AWS/SQS, dimension QueueName, every 5 minutes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.aws.queues import JobQueues
from components.aws.raw import AwsResource
from components.aws.tags import tags_for

SQS_PERIOD_SECONDS = 300   # SQS sends its CloudWatch metrics every 5 minutes


def queue_alarms(runtime: str, queue: str, dead_letter: str, timeout_seconds: int) -> list[dict]:
    """The alarms of one runtime: name, metric, queue, threshold and what to do."""
    return [
        {"name": f"{runtime}-dead-letters", "metric": "ApproximateNumberOfMessagesVisible",
         "queue": dead_letter, "threshold": 0, "statistic": "Maximum",
         "description": (f"Jobs of runtime {runtime} failed every attempt and wait in {dead_letter}. "
                         "Read a message's failure (its attributes), fix the cause, then redrive the "
                         "queue from the SQS console.")},
        {"name": f"{runtime}-oldest-job", "metric": "ApproximateAgeOfOldestMessage",
         "queue": queue, "threshold": 2 * timeout_seconds, "statistic": "Maximum",
         "description": (f"A job of runtime {runtime} has waited longer than twice the job timeout: "
                         "workers are not keeping up or no GPU node starts (Karpenter's events on "
                         "the pending pods, EC2 GPU quota).")},
    ]


def dashboard_body(region: str, queues: dict[str, tuple[str, str]]) -> dict:
    """One row per runtime: queue depth, oldest job age, dead letters."""
    widgets = []
    for row, (runtime, (queue, dead_letter)) in enumerate(sorted(queues.items())):
        for col, (title, metric, name) in enumerate((
                ("jobs waiting", "ApproximateNumberOfMessagesVisible", queue),
                ("oldest job (s)", "ApproximateAgeOfOldestMessage", queue),
                ("dead letters", "ApproximateNumberOfMessagesVisible", dead_letter))):
            widgets.append({"type": "metric", "x": 8 * col, "y": 6 * row, "width": 8, "height": 6,
                            "properties": {"title": f"{runtime}: {title}", "region": region,
                                           "stat": "Maximum", "period": SQS_PERIOD_SECONDS,
                                           "metrics": [["AWS/SQS", metric, "QueueName", name]]}})
    return {"widgets": widgets}


@dataclass(frozen=True)
class QueueAlarmsArgs:
    queues: JobQueues
    region: str
    timeout_seconds: int
    labels: dict[str, str]
    alert_email: Optional[str] = None


class QueueAlarms(pulumi.ComponentResource):
    """`sdfleet:aws:QueueAlarms`: the queues' dashboard, alarms and the topic they publish to."""

    def __init__(self, name: str, args: QueueAlarmsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:QueueAlarms", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.topic = AwsResource(f"{name}-alerts", "aws:sns/topic:Topic", {
            "name": f"{name}-alerts", "kmsMasterKeyId": "alias/aws/sns",
            "tags": tags_for(args.labels, f"{name}-alerts")}, opts=child)
        if args.alert_email:
            AwsResource(f"{name}-alerts-email", "aws:sns/topicSubscription:TopicSubscription", {
                "topic": self.topic.id, "protocol": "email", "endpoint": args.alert_email}, opts=child)
        self.alarms = []
        for runtime, rq in args.queues.runtimes.items():
            queue_name, dead_letter_name = rq.queue.name, rq.dead_letter.name
            specs = pulumi.Output.all(queue_name, dead_letter_name).apply(
                lambda q, runtime=runtime: queue_alarms(runtime, q[0], q[1], args.timeout_seconds))
            for i, label in enumerate(("dead-letters", "oldest-job")):
                spec = specs.apply(lambda s, i=i: s[i])
                self.alarms.append(AwsResource(f"{name}-{runtime}-{label}", "aws:cloudwatch/metricAlarm:MetricAlarm", {
                    "name": f"{name}-{runtime}-{label}",
                    "alarmDescription": spec.apply(lambda s: s["description"]),
                    "namespace": "AWS/SQS", "metricName": spec.apply(lambda s: s["metric"]),
                    "dimensions": spec.apply(lambda s: {"QueueName": s["queue"]}),
                    "statistic": "Maximum", "period": SQS_PERIOD_SECONDS, "evaluationPeriods": 1,
                    "comparisonOperator": "GreaterThanThreshold",
                    "threshold": spec.apply(lambda s: float(s["threshold"])),
                    "treatMissingData": "notBreaching",
                    # an SNS topic's id is its ARN
                    "alarmActions": [self.topic.id], "okActions": [self.topic.id],
                    "tags": tags_for(args.labels, f"{name}-{runtime}-{label}")}, opts=child))
        body = pulumi.Output.all(*[pulumi.Output.all(rq.queue.name, rq.dead_letter.name)
                                   for rq in args.queues.runtimes.values()]).apply(
            lambda pairs: json.dumps(dashboard_body(args.region, {
                rt: (pair[0], pair[1]) for rt, pair in zip(args.queues.runtimes, pairs)}), sort_keys=True))
        self.dashboard = AwsResource(f"{name}-dashboard", "aws:cloudwatch/dashboard:Dashboard", {
            "dashboardName": f"{name}-jobs", "dashboardBody": body}, opts=child)
        self.register_outputs({"alertsTopicArn": self.topic.id})
