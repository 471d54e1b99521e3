"""KEDA's ScaledJob arithmetic, with the strategy and trigger the plan registers.

The model below restates KEDA v2.17's scale-out rule for ScaledJobs from its source
(kedacore/keda, pkg/scaling/executor/scale_jobs.go: `RequestJobScale`, `getRunningJobCount`,
`getPendingJobCount`, `isAnyPodRunningOrCompleted`, and the `default` / `accurate`
`GetEffectiveMaxScale`; `createJobs` caps the count at the effective value). maxScale is the
aws-sqs-queue scaler's message count (visible, plus in flight when `scaleOnInFlight` is
"true", KEDA docs "AWS SQS Queue") divided by `queueLength`, capped at `maxReplicaCount`
(pkg/scaling/scaledjob/metrics.go, `IsScaledJobActive` / `GetMaxValue`). The queueLength of a
ScaledJob here is 1 (one message per Job), so scaleTo (the raw message count) equals maxScale
and each poll creates `min(maxScale, effective)` new Jobs.

What the agent does (images/queue-agent): its pod runs, then it waits for its WebUI (minutes
on a cold node) and only then receives a message; the Job ends after its message is done.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tests.program.aws.aws_fixtures import aws_config, aws_update  # noqa: F401

SCALED_JOB = "kubernetes:keda.sh/v1alpha1:ScaledJob"
NODE_POLLS = 12        # 2 min for Karpenter to bring a GPU node, at a 10 s polling interval
WEBUI_LOAD_POLLS = 30  # 5 min for the WebUI to load its model
JOB_POLLS = 30         # 5 min of generation


@dataclass
class SimJob:
    age: int = 0
    started: int | None = None  # the poll at which its agent took a message
    done: bool = False

    @property
    def pod_running(self) -> bool:  # KEDA: a pod in phase Running or Succeeded
        return self.age >= NODE_POLLS


def effective_max_scale(strategy: str, max_scale: int, running: int, pending: int,
                        max_replicas: int) -> int:
    if strategy == "accurate":
        if max_scale + running > max_replicas:
            return max_replicas - running
        return max_scale - pending
    return max_scale - running  # "default"


def simulate(strategy: str, scale_on_in_flight: bool, queue_length: int, max_replicas: int,
             messages: int, polls: int = 200) -> int:
    """Jobs created for `messages` arriving at once on an idle runtime."""
    visible, in_flight, jobs = messages, 0, []
    for _ in range(polls):
        running = [j for j in jobs if not j.done]
        pending = [j for j in running if not j.pod_running]
        counted = visible + (in_flight if scale_on_in_flight else 0)
        max_scale = min(math.ceil(counted / queue_length), max_replicas)
        effective = max(0, effective_max_scale(strategy, max_scale, len(running), len(pending),
                                               max_replicas))
        jobs += [SimJob() for _ in range(min(max_scale, effective))] if counted else []
        for job in jobs:
            if job.done:
                continue
            job.age += 1
            if job.started is None and job.age >= NODE_POLLS + WEBUI_LOAD_POLLS:
                if visible:  # the agent takes a message only once its WebUI answers
                    visible, in_flight, job.started = visible - 1, in_flight + 1, job.age
                else:
                    job.done = True  # nothing in the queue: the pod exits
            elif job.started is not None and job.age >= job.started + JOB_POLLS:
                in_flight, job.done = in_flight - 1, True  # result written, message deleted
    return len(jobs)


def _registered(aws_update) -> tuple[str, bool, int, int]:
    spec = aws_update.one(SCALED_JOB).inputs["spec"]
    (trigger,) = spec["triggers"]
    return (spec["scalingStrategy"]["strategy"], trigger["metadata"]["scaleOnInFlight"] == "true",
            int(trigger["metadata"]["queueLength"]), spec["maxReplicaCount"])


def test_one_cold_message_starts_one_gpu_job(aws_update):
    strategy, in_flight, queue_length, max_replicas = _registered(aws_update)
    assert simulate(strategy, in_flight, queue_length, max_replicas, messages=1) == 1


def test_a_burst_gets_one_job_per_message_up_to_the_cap(aws_update):
    strategy, in_flight, queue_length, max_replicas = _registered(aws_update)
    assert simulate(strategy, in_flight, queue_length, max_replicas, messages=3) == 3
    # more messages than the cap: the cap at once, then one Job per remaining message
    assert simulate(strategy, in_flight, queue_length, max_replicas,
                    messages=max_replicas + 2) == max_replicas + 2


def test_the_accurate_strategy_would_start_extra_jobs_per_cold_message():
    """The fault of 15.8, shown by the same arithmetic: `accurate` counts a Job as pending only
    until its pod runs, and the WebUI then still loads for minutes."""
    extra = simulate("accurate", False, 1, 6, messages=1)
    assert extra >= 1 + WEBUI_LOAD_POLLS // NODE_POLLS
