"""What the EKS variant's operators see: a CloudWatch dashboard of the job queues and alarms.

Per runtime: a message in its dead-letter queue (a job failed `jobs.maxReceiveCount` times),
its oldest waiting job older than twice the job timeout (the workers are not keeping up, or
no GPU node comes), and jobs that ended failed (the queue agent's own metric). The alarms
publish to one SNS topic; `aws.alertEmail` subscribes an address. SQS publishes its metrics
itself (namespace AWS/SQS, dimension QueueName, every 5 minutes); the queue agent publishes the
jobs' results, durations and waits to the stack's namespace (`agent_namespace`, names in the
agent's metric_names.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

import pulumi

from components.aws.queues import JobQueues
from components.aws.raw import AwsResource
from components.aws.tags import tags_for
from components.env_names import load_import_free

SQS_PERIOD_SECONDS = 300   # SQS sends its CloudWatch metrics every 5 minutes
AGENT_METRICS = load_import_free("images/queue-agent/sdfleet_agent/metric_names.py")


def agent_namespace(prefix: str) -> str:
    """The CloudWatch namespace the stack's queue agents publish to."""
    return f"sdfleet/{prefix}"


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


def failed_jobs_alarm(runtime: str, namespace: str) -> dict:
    """Jobs of one runtime that ended failed, from the queue agent's own metric."""
    m = AGENT_METRICS
    return {"name": f"{runtime}-failed-jobs", "namespace": namespace, "metric": m.JOBS,
            "dimensions": {m.RUNTIME: runtime, m.RESULT: m.FAILED}, "statistic": "Sum",
            "threshold": 0,
            "description": (f"Jobs of runtime {runtime} ended failed (a permanent error, or their "
                            "last try). Each job's result.json says why; the agent's log has the "
                            "WebUI's answer. Many at once: a broken model or image, or the WebUI "
                            "out of GPU memory for the sizes asked.")}


def dashboard_body(region: str, queues: dict[str, tuple[str, str]], namespace: str) -> dict:
    """One row per runtime: queue depth, oldest job age, dead letters; jobs by result, time per
    job and time in the queue."""
    m = AGENT_METRICS
    widgets = []
    for row, (runtime, (queue, dead_letter)) in enumerate(sorted(queues.items())):
        for col, (title, metric, name) in enumerate((
                ("jobs waiting", "ApproximateNumberOfMessagesVisible", queue),
                ("oldest job (s)", "ApproximateAgeOfOldestMessage", queue),
                ("dead letters", "ApproximateNumberOfMessagesVisible", dead_letter))):
            widgets.append({"type": "metric", "x": 8 * col, "y": 12 * row, "width": 8, "height": 6,
                            "properties": {"title": f"{runtime}: {title}", "region": region,
                                           "stat": "Maximum", "period": SQS_PERIOD_SECONDS,
                                           "metrics": [["AWS/SQS", metric, "QueueName", name]]}})
        agent = [
            ("jobs by result", "Sum", [[namespace, m.JOBS, m.RUNTIME, runtime, m.RESULT, result]
                                       for result in m.RESULTS]),
            ("time per job p95 (s)", "p95", [[namespace, m.JOB_SECONDS, m.RUNTIME, runtime]]),
            ("time in the queue p95 (s)", "p95", [[namespace, m.SECONDS_IN_QUEUE, m.RUNTIME, runtime]]),
        ]
        for col, (title, stat, metrics) in enumerate(agent):
            widgets.append({"type": "metric", "x": 8 * col, "y": 12 * row + 6, "width": 8, "height": 6,
                            "properties": {"title": f"{runtime}: {title}", "region": region,
                                           "stat": stat, "period": 60, "metrics": metrics}})
    return {"widgets": widgets}


@dataclass(frozen=True)
class QueueAlarmsArgs:
    queues: JobQueues
    region: str
    timeout_seconds: int
    labels: dict[str, str]
    namespace: str                       # where the queue agents publish (agent_namespace)
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
            failed = failed_jobs_alarm(runtime, args.namespace)
            self.alarms.append(AwsResource(f"{name}-{runtime}-failed-jobs", "aws:cloudwatch/metricAlarm:MetricAlarm", {
                "name": f"{name}-{runtime}-failed-jobs", "alarmDescription": failed["description"],
                "namespace": failed["namespace"], "metricName": failed["metric"],
                "dimensions": failed["dimensions"], "statistic": failed["statistic"],
                "period": 300, "evaluationPeriods": 1,
                "comparisonOperator": "GreaterThanThreshold", "threshold": float(failed["threshold"]),
                "treatMissingData": "notBreaching",
                "alarmActions": [self.topic.id], "okActions": [self.topic.id],
                "tags": tags_for(args.labels, f"{name}-{runtime}-failed-jobs")}, opts=child))
        body = pulumi.Output.all(*[pulumi.Output.all(rq.queue.name, rq.dead_letter.name)
                                   for rq in args.queues.runtimes.values()]).apply(
            lambda pairs: json.dumps(dashboard_body(args.region, {
                rt: (pair[0], pair[1]) for rt, pair in zip(args.queues.runtimes, pairs)},
                args.namespace), sort_keys=True))
        self.dashboard = AwsResource(f"{name}-dashboard", "aws:cloudwatch/dashboard:Dashboard", {
            "dashboardName": f"{name}-jobs", "dashboardBody": body}, opts=child)
        self.register_outputs({"alertsTopicArn": self.topic.id})
