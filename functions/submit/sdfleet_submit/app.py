"""One request in, one answer out: parse, validate, publish, answer.

The order is the point: nothing is published unless the whole job is valid, and the 202
is sent only after SNS has accepted the message, so a job id the client holds always
refers to a job that is on its way to a queue. Request headers (they carry the API key)
are never logged; only the job id, runtime and task are.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from datetime import datetime, timezone

from pydantic import ValidationError

from .job import JobRequest
from .message import job_message, results_location
from .settings import SubmitSettings

log = logging.getLogger("sdfleet.submit")

JSON_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def answer(status: int, body: dict, headers: dict | None = None) -> dict:
    """An API Gateway proxy-integration response."""
    return {"statusCode": status, "headers": {**JSON_HEADERS, **(headers or {})},
            "body": json.dumps(body)}


def _shown(value, limit: int = 200):
    """The offending value, echoed back so the client sees what was refused (bounded)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, (dict, list)):
        text = json.dumps(value)
        return value if len(text) <= limit else text[:limit] + "..."
    return value


def invalid_job(error: ValidationError) -> dict:
    """400 naming every bad field, its value and what is allowed."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "body"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = f"unknown field; allowed fields: {', '.join(JobRequest.model_fields)}"
        value = None if item["type"] == "missing" else _shown(item.get("input"))
        problems.append({"field": field, "value": value, "message": message})
    first = problems[0]
    return answer(400, {"error": "invalid-job",
                        "message": f"{first['field']}: {first['message']}",
                        "field": first["field"], "problems": problems})


def bad_body(message: str) -> dict:
    return answer(400, {"error": "invalid-job", "message": f"body: {message}", "field": "body",
                        "problems": [{"field": "body", "value": None, "message": message}]})


class SubmitApp:
    def __init__(self, settings: SubmitSettings, sns_client):
        self.settings = settings
        self.sns = sns_client

    def __call__(self, event: dict, context=None) -> dict:
        method = (event.get("httpMethod") or "").upper()
        if method != "POST":
            return answer(405, {"error": "method-not-allowed", "message": "use POST"},
                          {"Allow": "POST"})
        data = self._json_body(event)
        if isinstance(data, str):
            return bad_body(data)
        try:
            job = JobRequest.model_validate(data, context={"settings": self.settings})
        except ValidationError as error:
            response = invalid_job(error)
            log.info("job refused: %s", json.loads(response["body"])["message"][:300])
            return response
        return self._publish(job)

    @staticmethod
    def _json_body(event: dict) -> dict | str:
        """The parsed JSON object, or a string saying why there is none."""
        raw = event.get("body")
        if raw is None or raw == "":
            return "missing; send a JSON object"
        try:
            if event.get("isBase64Encoded"):
                raw = base64.b64decode(raw).decode("utf-8")
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return "not valid JSON; send a JSON object"
        if not isinstance(data, dict):
            return f"must be a JSON object, not {type(data).__name__}"
        return data

    def _publish(self, job: JobRequest) -> dict:
        job_id = str(uuid.uuid4())
        submitted_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        body, attributes = job_message(job, job_id, submitted_at)
        try:
            self.sns.publish(TopicArn=self.settings.topic_arn, Message=body,
                             MessageAttributes=attributes)
        except Exception as error:  # noqa: BLE001 - any failure means "not queued"
            log.error("job %s not queued: publish failed: %s", job_id, type(error).__name__)
            return answer(503, {"error": "queue-unavailable",
                                "message": "the job could not be queued; nothing was submitted, "
                                           "retry later"}, {"Retry-After": "5"})
        log.info("job %s queued for runtime %s (%s)", job_id, job.runtime, job.task)
        return answer(202, {"jobId": job_id, "status": "queued", "runtime": job.runtime,
                            "task": job.task, "submittedAt": submitted_at,
                            "results": results_location(self.settings.results_bucket, job_id)})
