"""What each handled message adds to the runtime's CloudWatch metrics (metric_names.py).

One PutMetricData call per message, after its disposition: the count by outcome, the time the
agent spent and the time the job waited in the queue. A metrics call that fails is logged and
never touches the job (its result and its message are already settled).
"""

from __future__ import annotations

import logging

from botocore.exceptions import BotoCoreError, ClientError

from . import metric_names as m
from .decision import Action, Outcome

log = logging.getLogger("sdfleet.agent.metrics")


def result_of(outcome: Outcome, action: Action) -> str:
    """What one handled message means for its job, as the metrics and alarms count it."""
    if outcome is Outcome.POISON:
        return m.POISON
    if action is Action.REQUEUE:
        return m.REQUEUED
    if action is Action.RELEASE:
        return m.RETRIED
    if outcome is Outcome.SUCCEEDED:
        return m.SUCCEEDED
    return m.FAILED            # deleted after a permanent failure, or dead-lettered on its last try


def metric_data(runtime: str, result: str, job_seconds: float,
                queued_seconds: float | None) -> list[dict]:
    by_runtime = [{"Name": m.RUNTIME, "Value": runtime}]
    data = [{"MetricName": m.JOBS, "Dimensions": [*by_runtime, {"Name": m.RESULT, "Value": result}],
             "Value": 1.0, "Unit": "Count"},
            {"MetricName": m.JOB_SECONDS, "Dimensions": by_runtime,
             "Value": round(job_seconds, 3), "Unit": "Seconds"}]
    if queued_seconds is not None:
        data.append({"MetricName": m.SECONDS_IN_QUEUE, "Dimensions": by_runtime,
                     "Value": round(max(0.0, queued_seconds), 3), "Unit": "Seconds"})
    return data


class JobMetrics:
    def __init__(self, cloudwatch, namespace: str, runtime: str):
        self.cloudwatch, self.namespace, self.runtime = cloudwatch, namespace, runtime

    def record(self, outcome: Outcome, action: Action, job_seconds: float,
               queued_seconds: float | None) -> None:
        try:
            self.cloudwatch.put_metric_data(
                Namespace=self.namespace,
                MetricData=metric_data(self.runtime, result_of(outcome, action), job_seconds,
                                       queued_seconds))
        except (BotoCoreError, ClientError) as error:
            log.warning("job metrics not recorded: %s", error)
