"""Submitting jobs in tests through the real submit function (SNS -> filtered SQS)."""

from __future__ import annotations

import json

from sdfleet_submit.app import SubmitApp
from sdfleet_submit.settings import load_settings


def submit(stack, **fields) -> str:
    """Submit one job through the submit function; returns its job id."""
    settings = load_settings({"JOBS_TOPIC_ARN": stack.jobs_topic_arn,
                              "RUNTIMES": ",".join(stack.runtimes),
                              "RESULTS_BUCKET": stack.bucket})
    app = SubmitApp(settings, stack.client("sns"))
    job = {"runtime": "sd-a", "prompt": "a lighthouse at dusk", **fields}
    response = app({"httpMethod": "POST", "body": json.dumps(job)}, None)
    assert response["statusCode"] == 202, response["body"]
    return json.loads(response["body"])["jobId"]
