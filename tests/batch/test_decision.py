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


def test_abandoned_job_is_released_at_once():
    assert decide(Outcome.ABANDONED, 4, has_dead_letter_queue=True, **RULE) == \
        Disposition(Action.RELEASE, 0)
