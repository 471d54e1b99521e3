"""The status rule of GET /jobs/{id} (functions/submit/sdfleet_submit/jobs.py job_status)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sdfleet_submit.jobs import job_status
from sdfleet_submit.settings import load_settings

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = load_settings({"JOBS_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:jobs",
                          "RUNTIMES": "sd-a", "RESULTS_BUCKET": "results-bucket",
                          "ATTEMPT_SECONDS": "1200", "MAX_RECEIVE_COUNT": "3"})


def running(attempt: int, minutes_ago: float) -> dict:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {"status": "running", "attempt": attempt, "startedAt": at, "updatedAt": at}


@pytest.mark.parametrize("result, status, expected", [
    (None, None, ("queued", None, None)),
    ({"status": "succeeded", "error": None, "attempt": 1}, running(1, 1), ("succeeded", None, 1)),
    ({"status": "failed", "error": "gave up after 3 attempts (the job is in the dead-letter "
      "queue): boom", "attempt": 3}, None,
     ("failed", "gave up after 3 attempts (the job is in the dead-letter queue): boom", 3)),
    (None, running(1, 5), ("running", None, 1)),
    (None, {"status": "retrying", "attempt": 2, "error": "WebUI answered 500",
            "updatedAt": NOW.isoformat()}, ("queued", "WebUI answered 500", 2)),
    # an attempt older than an attempt may last died with its worker
    (None, running(1, 25), ("queued", "attempt 1 stopped; it will be retried", 1)),
    # ... on the last attempt: SQS's redrive policy has dead-lettered the message
    (None, running(3, 25), ("failed", "the worker stopped during attempt 3, the last one; the "
                            "job is in the dead-letter queue", 3)),
])
def test_status_rule(result, status, expected):
    assert job_status(result, status, SETTINGS, NOW) == expected
