"""An SQS message body -> a Job, or PoisonMessage saying why it cannot be one.

The EKS deployment subscribes each runtime's queue to the jobs topic with raw message
delivery, so the body is the job JSON the submit function published. Without raw delivery
SQS receives the SNS envelope (`{"Type": "Notification", "Message": "<job JSON>", ...}`);
both are accepted, so a subscription set up either way never turns jobs into poison.

The agent re-checks the message even though the submit function validated it: anything
with sqs:SendMessage on the queue can put a message there, and the job id becomes part of
S3 keys.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import PoisonMessage

SCHEMA = "sdfleet.job/v1"


class Job(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    schema_: Literal["sdfleet.job/v1"] = Field(alias="schema")
    job_id: str = Field(alias="jobId",
                        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    runtime: str = Field(max_length=63)
    task: Literal["txt2img", "img2img"]
    model: str | None = Field(None, min_length=1, max_length=255)
    params: dict
    init_images: list[str] = Field(default_factory=list, alias="initImages")
    submitted_at: str | None = Field(None, alias="submittedAt")
    # The API key (usage-plan client) that submitted it: its init images come only from
    # that client's upload prefix (layout.py).
    client: str = Field(pattern=r"^[A-Za-z0-9_-]{1,128}$")


def unwrap_sns_envelope(data: dict) -> dict | str:
    """The job inside an SNS notification envelope, or `data` itself if it is not one."""
    if data.get("Type") == "Notification" and isinstance(data.get("Message"), str) \
            and "TopicArn" in data:
        return data["Message"]
    return data


def parse_job(body: str, runtime: str) -> Job:
    try:
        data = json.loads(body)
        if isinstance(data, dict):
            data = unwrap_sns_envelope(data)
        if isinstance(data, str):
            data = json.loads(data)
    except ValueError as error:
        raise PoisonMessage(f"body is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise PoisonMessage(f"body is JSON {type(data).__name__}, not an object")
    try:
        job = Job.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise PoisonMessage(f"not a {SCHEMA} job: {field}: {first['msg']}") from None
    if job.runtime != runtime:
        raise PoisonMessage(f"job {job.job_id} is for runtime {job.runtime!r}, this queue "
                            f"serves {runtime!r} (check the subscription filter policy)")
    if job.task == "img2img" and not job.init_images:
        raise PoisonMessage(f"job {job.job_id}: img2img without init images")
    return job
