"""The decision rule (images/queue-agent/sdfleet_agent/decision.py), case by case."""

import pytest
from sdfleet_agent.decision import Action, Disposition, Outcome, decide, retry_backoff

RULE = {"backoff_base": 30, "backoff_cap": 900}


@pytest.mark.parametrize("outcome", [Outcome.SUCCEEDED, Outcome.FAILED_PERMANENTLY])
def test_recorded_outcomes_are_deleted(outcome):
    assert decide(outcome, 1, has_dead_letter_queue=True, **RULE) == Disposition(Action.DELETE)


def test_retryable_failure_is_released_with_exponential_backoff():
    delays = [decide(Outcome.FAILED_RETRYABLE, n, has_dead_letter_queue=True, **RULE)
              for n in range(1, 8)]
    assert {d.action for d in delays} == {Action.RELEASE}
    assert [d.visible_after_seconds for d in delays] == [30, 60, 120, 240, 480, 900, 900]


def test_backoff_never_overflows_on_huge_receive_counts():
    assert retry_backoff(10_000, 30, 900) == 900


def test_poison_goes_to_dead_letter_queue_or_is_left_to_redrive():
    assert decide(Outcome.POISON, 1, has_dead_letter_queue=True, **RULE).action is Action.DEAD_LETTER
    left = decide(Outcome.POISON, 1, has_dead_letter_queue=False, **RULE)
    assert left == Disposition(Action.RELEASE, 0)


def test_abandoned_job_is_requeued_without_spending_a_try():
    """A Spot interruption or drain is not the job's fault: it must not count towards
    maxReceiveCount (three interruptions would otherwise send a good job to the DLQ)."""
    for receives in (1, 2, 3):
        assert decide(Outcome.ABANDONED, receives, has_dead_letter_queue=True,
                      max_receive_count=3, **RULE) == Disposition(Action.REQUEUE)


def test_a_job_interrupted_too_often_is_released_and_counted():
    from sdfleet_agent.decision import MAX_INTERRUPTIONS
    assert decide(Outcome.ABANDONED, 1, has_dead_letter_queue=True, max_receive_count=3,
                  interruptions=MAX_INTERRUPTIONS - 1, **RULE).action is Action.REQUEUE
    assert decide(Outcome.ABANDONED, 1, has_dead_letter_queue=True, max_receive_count=3,
                  interruptions=MAX_INTERRUPTIONS, **RULE) == Disposition(Action.RELEASE, 0)
