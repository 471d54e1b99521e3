"""The EKS variant's operators' view: per runtime an alarm on its dead-letter queue and one on
its oldest waiting job, on the queues the stack made, to one alerts topic (an email subscription
when configured), and a dashboard of the same queues."""

from __future__ import annotations

import json

from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update  # noqa: F401

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
QUEUE = "aws:sqs/queue:Queue"


def test_each_runtime_has_its_dead_letter_and_oldest_job_alarms(aws_update):
    queues = {r.inputs["name"] for r in aws_update.of_type(QUEUE)}
    timeout = 900                                            # aws.jobs.timeoutSeconds default
    all_alarms = {r.name.split("-ops-", 1)[1]: r.inputs for r in aws_update.of_type(ALARM)}
    assert set(all_alarms) == {f"{rt}-{kind}" for rt in ("sdwebui", "comfyui")
                               for kind in ("dead-letters", "oldest-job", "failed-jobs")}
    alarms = {k: v for k, v in all_alarms.items() if not k.endswith("failed-jobs")}
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
    shown = {tuple(w["properties"]["metrics"][0][1:4:2]) for w in body["widgets"]
             if w["properties"]["metrics"][0][0] == "AWS/SQS"}
    assert {(a["metricName"], a["dimensions"]["QueueName"]) for a in alarms.values()} <= shown


def test_alarms_go_to_the_configured_address(plan, aws_config_of):
    result = plan(aws_config_of(lambda p: p["aws"].setdefault("jobs", {}).update(
        alertEmail="oncall@example.com")), stack=STACK)
    (subscription,) = [s for s in result.of_type("aws:sns/topicSubscription:TopicSubscription")
                       if s.inputs.get("protocol") == "email"]
    assert subscription.inputs["endpoint"] == "oncall@example.com"


def test_failed_jobs_alarm_reads_the_metric_the_agent_publishes_where_it_may_publish(aws_update):
    """The alarm's namespace, metric and dimensions are the agent's own names, and the agent's
    environment and IAM name the same namespace."""
    from components.aws.alarms import AGENT_METRICS as m
    policies = {r.name: json.loads(r.inputs["policy"]) for r in aws_update.of_type(
        "aws:iam/rolePolicy:RolePolicy") if "-agent-" in r.name}
    topic = aws_update.one("aws:sns/topic:Topic", "ops-alerts")
    for runtime in ("sdwebui", "comfyui"):
        alarm = aws_update.one(ALARM, f"ops-{runtime}-failed-jobs").inputs
        assert alarm["metricName"] == m.JOBS and alarm["statistic"] == "Sum"
        assert alarm["dimensions"] == {m.RUNTIME: runtime, m.RESULT: m.FAILED}
        assert alarm["alarmActions"] == [f"{topic.name}-id"] and len(alarm["alarmDescription"]) > 60
        namespace = alarm["namespace"]
        (policy,) = [p for name, p in policies.items() if f"-agent-{runtime}" in name]
        assert {"Effect": "Allow", "Action": ["cloudwatch:PutMetricData"], "Resource": ["*"],
                "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}}} in policy["Statement"]
    envs = [c["env"] for r in aws_update.resources if r.type.startswith("kubernetes:")
            for c in _containers(r.inputs) if c.get("name") == "agent"]
    assert envs and all({"name": "METRICS_NAMESPACE", "value": "sdfleet/sdbatch"} in e for e in envs)
    body = json.loads(aws_update.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    shown = {w["properties"]["metrics"][0][1] for w in body["widgets"]}
    assert {m.JOBS, m.JOB_SECONDS, m.SECONDS_IN_QUEUE} <= shown


def _containers(inputs: dict) -> list[dict]:
    found = []

    def walk(value):
        if isinstance(value, dict):
            if isinstance(value.get("containers"), list):
                found.extend(value["containers"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
    walk(inputs)
    return found
