"""The job message published to SNS: the contract with the queue agent.

SNS routes on the `runtime` message attribute (subscription filter policy) to that
runtime's SQS queue; the subscription uses raw message delivery, so the SQS body is exactly
the JSON built here (the agent also accepts the SNS envelope). Results land under
`results/<jobId>/` in the stack's bucket; the agent derives the same keys from the job id.
"""

from __future__ import annotations

import json

from .job import JobRequest
from .layout import RESULTS_PREFIX

SCHEMA = "sdfleet.job/v1"

# Request fields that are not WebUI parameters but describe the job itself.
ENVELOPE_FIELDS = {"runtime", "task", "model", "init_images"}


def results_location(bucket: str, job_id: str) -> dict:
    prefix = f"{RESULTS_PREFIX}{job_id}/"
    return {"bucket": bucket, "prefix": prefix,
            "resultJson": f"s3://{bucket}/{prefix}result.json"}


def job_message(job: JobRequest, job_id: str, submitted_at: str,
                client: str) -> tuple[str, dict]:
    """(SNS message body, SNS message attributes) for one validated job of `client`."""
    params = job.model_dump(exclude=ENVELOPE_FIELDS, exclude_none=True)
    body = {"schema": SCHEMA, "jobId": job_id, "runtime": job.runtime, "task": job.task,
            "model": job.model, "params": params, "initImages": list(job.init_images),
            "submittedAt": submitted_at, "client": client}
    attributes = {"runtime": {"DataType": "String", "StringValue": job.runtime},
                  "task": {"DataType": "String", "StringValue": job.task}}
    return json.dumps(body, separators=(",", ":")), attributes
