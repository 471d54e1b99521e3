"""The queue agent's job metrics in CloudWatch (sdfleet_agent/metric_names.py): what one handled
message counts as, and the real agent publishing them to the (moto) CloudWatch API."""

from __future__ import annotations

import uuid

import pytest
from sdfleet_agent import metric_names as m
from sdfleet_agent.decision import Action, Outcome
from sdfleet_agent.job_metrics import metric_data, result_of

from testing.batch.processes import wait_until
from tests.batch.jobs import submit


def _namespace() -> str:
    """A namespace of this test's own: the moto server outlives a test."""
    return f"sdfleet/test-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("outcome, action, result", [
    (Outcome.SUCCEEDED, Action.DELETE, m.SUCCEEDED),
    (Outcome.FAILED_PERMANENTLY, Action.DELETE, m.FAILED),
    (Outcome.FAILED_RETRYABLE, Action.DEAD_LETTER, m.FAILED),      # its last try
    (Outcome.ABANDONED, Action.DEAD_LETTER, m.FAILED),
    (Outcome.FAILED_RETRYABLE, Action.RELEASE, m.RETRIED),
    (Outcome.ABANDONED, Action.RELEASE, m.RETRIED),
    (Outcome.SUCCEEDED, Action.REQUEUE, m.REQUEUED),
    (Outcome.POISON, Action.DEAD_LETTER, m.POISON),
    (Outcome.POISON, Action.RELEASE, m.POISON),
])
def test_what_a_handled_message_counts_as(outcome, action, result):
    assert result_of(outcome, action) == result and result in m.RESULTS


def test_the_metric_data_names_its_runtime_and_result():
    data = metric_data("sd-a", m.FAILED, 12.3456, None)
    assert [d["MetricName"] for d in data] == [m.JOBS, m.JOB_SECONDS]      # no send time known
    assert data[0]["Dimensions"] == [{"Name": m.RUNTIME, "Value": "sd-a"},
                                     {"Name": m.RESULT, "Value": m.FAILED}]
    assert data[1]["Value"] == 12.346 and data[1]["Unit"] == "Seconds"
    queued = metric_data("sd-a", m.SUCCEEDED, 1.0, -0.5)[2]
    assert queued["MetricName"] == m.SECONDS_IN_QUEUE and queued["Value"] == 0.0   # clock skew


def _datapoints(stack, namespace: str, name: str, **dimensions) -> int:
    cloudwatch = stack.moto.client("cloudwatch")
    metrics = cloudwatch.list_metrics(Namespace=namespace, MetricName=name)["Metrics"]
    wanted = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    return sum(1 for metric in metrics
               if all(d in metric["Dimensions"] for d in wanted))


def test_the_agent_publishes_each_jobs_result_time_and_wait(stack, webui, start_agent):
    namespace = _namespace()
    job_id = submit(stack)
    agent = start_agent(METRICS_NAMESPACE=namespace)
    wait_until(lambda: stack.result(job_id), 20, what="result.json")
    wait_until(lambda: _datapoints(stack, namespace, m.JOBS, Runtime="sd-a", Result=m.SUCCEEDED),
               10, what="the Jobs metric")
    for name in (m.JOB_SECONDS, m.SECONDS_IN_QUEUE):
        assert _datapoints(stack, namespace, name, Runtime="sd-a"), name
    assert "job metrics not recorded" not in agent.log()


def test_a_job_that_fails_for_good_is_counted_failed(stack, webui, start_agent):
    namespace = _namespace()
    webui.configure(mode="500")
    submit(stack)
    start_agent(METRICS_NAMESPACE=namespace)
    wait_until(lambda: stack.receive_all(stack.dlq_urls["sd-a"], wait=0.2), 30,
               what="message in the dead-letter queue")
    wait_until(lambda: _datapoints(stack, namespace, m.JOBS, Runtime="sd-a", Result=m.FAILED), 10,
               what="a failed job counted")
    assert _datapoints(stack, namespace, m.JOBS, Runtime="sd-a", Result=m.RETRIED)


def test_without_a_namespace_the_agent_publishes_nothing(stack, webui, start_agent):
    cloudwatch = stack.moto.client("cloudwatch")
    before = cloudwatch.list_metrics()["Metrics"]
    job_id = submit(stack)
    start_agent()
    wait_until(lambda: stack.result(job_id), 20, what="result.json")
    assert cloudwatch.list_metrics()["Metrics"] == before
