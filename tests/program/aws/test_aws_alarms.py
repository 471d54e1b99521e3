"""The EKS variant's operators' view: per runtime an alarm on its dead-letter queue and one on
its oldest waiting job, on the queues the stack made, to one alerts topic (an email subscription
when configured), and a dashboard of the same queues."""

from __future__ import annotations

import json

from tests.program.aws.aws_fixtures import (  # noqa: F401
    STACK,
    aws_config,
    aws_config_of,
    aws_plan,
    aws_update,
)

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
QUEUE = "aws:sqs/queue:Queue"


def test_each_runtime_has_its_dead_letter_and_oldest_job_alarms(aws_update):
    queues = {r.inputs["name"] for r in aws_update.of_type(QUEUE)}
    timeout = 900                                            # aws.jobs.timeoutSeconds default
    alarms = {r.name.split("-ops-", 1)[1]: r.inputs for r in aws_update.of_type(ALARM)}
    assert set(alarms) == {"sdwebui-dead-letters", "sdwebui-oldest-job",
                           "comfyui-dead-letters", "comfyui-oldest-job"}
    topic = aws_update.one("aws:sns/topic:Topic", "ops-alerts")
    for name, alarm in alarms.items():
        runtime = name.split("-", 1)[0]
        queue = alarm["dimensions"]["QueueName"]
        assert queue in queues and alarm["namespace"] == "AWS/SQS"
        assert alarm["alarmActions"] == [f"{topic.name}-id"] and len(alarm["alarmDescription"]) > 60
        if name.endswith("dead-letters"):
            assert queue.endswith(f"-{runtime}-dlq")
            assert alarm["metricName"] == "ApproximateNumberOfMessagesVisible" and alarm["threshold"] == 0
        else:
            assert queue.endswith(f"-{runtime}")
            assert alarm["metricName"] == "ApproximateAgeOfOldestMessage" and alarm["threshold"] == 2 * timeout
    body = json.loads(aws_update.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    shown = {tuple(w["properties"]["metrics"][0][1::2]) for w in body["widgets"]}
    assert {(a["metricName"], a["dimensions"]["QueueName"]) for a in alarms.values()} <= \
        {(metric, queue) for metric, queue in shown}


def test_alarms_go_to_the_configured_address(plan, aws_config_of):
    result = plan(aws_config_of(lambda p: p["aws"].setdefault("jobs", {}).update(
        alertEmail="oncall@example.com")), stack=STACK)
    (subscription,) = [s for s in result.of_type("aws:sns/topicSubscription:TopicSubscription")
                       if s.inputs.get("protocol") == "email"]
    assert subscription.inputs["endpoint"] == "oncall@example.com"
