"""The one rule for what happens to a message after the agent has tried it.

    outcome                  action
    succeeded                delete      results and notice are written
    failed permanently       delete      a failed result.json and notice are written
    failed, retryable        release     visible again after base * 2^(receives-1) seconds
                                         (capped)
      ... on the last try    dead-letter the receive count has reached maxReceiveCount: a
                                         failed result.json says so (the client sees it),
                                         then the message goes to the DLQ; SQS's redrive
                                         policy stays the backstop for an agent that dies
    poison (not a job)       dead-letter sent to the DLQ with the reason, then deleted;
                             (release)   with no DLQ configured: released at once, so the
                                         queue's redrive policy moves it there
    abandoned (shutdown)     requeue     sent again as a new message (receive count 1,
                                         `sdfleet-interruptions` + 1) and the old one
                                         deleted: a node going away is not the job's fault,
                                         so it does not spend one of maxReceiveCount tries
      ... interrupted often  release     after MAX_INTERRUPTIONS requeues: visible again at
                                         once, and counted like any other try

A message is deleted only when its outcome is recorded somewhere durable: in S3 (with a
notice), or in the dead-letter queue.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Outcome(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED_PERMANENTLY = "failed-permanently"
    FAILED_RETRYABLE = "failed-retryable"
    POISON = "poison"
    ABANDONED = "abandoned"


class Action(enum.Enum):
    DELETE = "delete"
    RELEASE = "release"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead-letter"


# A job interrupted this often is released (and counted) instead: a job that itself brings
# its node down must still reach the dead-letter queue.
MAX_INTERRUPTIONS = 5


@dataclass(frozen=True)
class Disposition:
    action: Action
    visible_after_seconds: int = 0


def retry_backoff(receive_count: int, base: int, cap: int) -> int:
    return min(cap, base * 2 ** max(0, min(receive_count - 1, 20)))


def decide(outcome: Outcome, receive_count: int, *, backoff_base: int, backoff_cap: int,
           has_dead_letter_queue: bool, max_receive_count: int | None = None,
           interruptions: int = 0) -> Disposition:
    if outcome in (Outcome.SUCCEEDED, Outcome.FAILED_PERMANENTLY):
        return Disposition(Action.DELETE)
    if (outcome is Outcome.FAILED_RETRYABLE and has_dead_letter_queue
            and max_receive_count is not None and receive_count >= max_receive_count):
        return Disposition(Action.DEAD_LETTER)
    if outcome is Outcome.POISON:
        return Disposition(Action.DEAD_LETTER if has_dead_letter_queue else Action.RELEASE)
    if outcome is Outcome.ABANDONED:
        if interruptions < MAX_INTERRUPTIONS:
            return Disposition(Action.REQUEUE)
        return Disposition(Action.RELEASE, 0)
    return Disposition(Action.RELEASE, retry_backoff(receive_count, backoff_base, backoff_cap))
