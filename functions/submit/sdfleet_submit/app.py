"""One request in, one answer out.

Routes (API Gateway REST API, every method signed with AWS SigV4 and carrying an API key).
The client is the signer: the IAM principal API Gateway verified (`requestContext.identity.
userArn`), as a stable id (`client_id`), so rotating an API key orphans no job; keys only
meter (the usage plan's rate and quota). A request without a verified principal is refused:

    POST /jobs            validate, record, publish, answer 202 with the job id
    GET  /jobs/{id}       the client's job: queued / running / succeeded / failed (+ reason),
                          with short-lived presigned URLs of its images (jobs.py)
    GET  /jobs?limit=N    the client's most recent jobs
    POST /uploads         a presigned PUT for an init image under the client's own prefix

For POST /jobs the order is the point: nothing is published unless the whole job is valid,
and the 202 is sent only after SNS has accepted the message, so a job id the client holds
always refers to a job that is on its way to a queue. Request headers (they carry the API
key) are never logged; only the job id, runtime and task are.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import uuid
from datetime import datetime, timezone

from pydantic import ValidationError

from .job import JobRequest
from .jobs import MAX_LIST, JobStore
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


# An IAM principal as API Gateway reports a SigV4 caller: a user, or an assumed role with its
# session name (SSO: the person; programs: use a fixed RoleSessionName).
PRINCIPAL_ARN = re.compile(r"arn:aws[a-z-]*:(iam|sts)::[0-9]{12}:[A-Za-z0-9+=,.@_/-]{1,512}")


def client_id(principal_arn: str) -> str:
    """The storage id of a principal: fixed length, safe in an S3 key, the same on every call."""
    return "iam-" + hashlib.sha256(principal_arn.encode()).hexdigest()[:32]


def client_of(event: dict) -> str | None:
    """The id of the IAM principal API Gateway verified for this request (AWS_IAM)."""
    identity = (event.get("requestContext") or {}).get("identity") or {}
    arn = identity.get("userArn")
    return client_id(arn) if isinstance(arn, str) and PRINCIPAL_ARN.fullmatch(arn) else None


ROUTES = {("POST", "/jobs"), ("GET", "/jobs"), ("GET", "/jobs/{id}"), ("POST", "/uploads")}


class SubmitApp:
    def __init__(self, settings: SubmitSettings, sns_client, s3_client):
        self.settings = settings
        self.sns = sns_client
        self.jobs = JobStore(settings, s3_client)

    def __call__(self, event: dict, context=None) -> dict:
        method = (event.get("httpMethod") or "").upper()
        resource = event.get("resource") or "/jobs"
        if (method, resource) not in ROUTES:
            allowed = sorted(m for m, r in ROUTES if r == resource)
            if not allowed:
                return answer(404, {"error": "not-found", "message": f"no route {resource}"})
            return answer(405, {"error": "method-not-allowed",
                                "message": f"use {' or '.join(allowed)}"},
                          {"Allow": ", ".join(allowed)})
        client = client_of(event)
        if client is None:
            return answer(403, {"error": "no-identity",
                                "message": "requests are signed with AWS SigV4 by an IAM principal "
                                           "allowed to invoke the API (the stack's apiClientPolicyArn), "
                                           "and carry an API key (x-api-key)"})
        if method == "GET" and resource == "/jobs/{id}":
            return self._describe(client, (event.get("pathParameters") or {}).get("id", ""))
        if method == "GET":
            return self._recent(client, (event.get("queryStringParameters") or {}).get("limit"))
        if resource == "/uploads":
            return answer(200, self.jobs.upload(client))
        data = self._json_body(event)
        if isinstance(data, str):
            return bad_body(data)
        try:
            job = JobRequest.model_validate(data, context={"settings": self.settings,
                                                           "client": client})
        except ValidationError as error:
            response = invalid_job(error)
            log.info("job refused: %s", json.loads(response["body"])["message"][:300])
            return response
        return self._publish(job, client)

    def _describe(self, client: str, job_id: str) -> dict:
        try:
            uuid.UUID(job_id)
        except ValueError:
            return answer(404, {"error": "not-found", "message": "no such job"})
        view = self.jobs.describe(client, job_id)
        if view is None:  # unknown, or another client's: the same answer
            return answer(404, {"error": "not-found", "message": "no such job"})
        return answer(200, view)

    def _recent(self, client: str, limit_text: str | None) -> dict:
        try:
            limit = int(limit_text) if limit_text is not None else 10
        except ValueError:
            limit = -1
        if not 1 <= limit <= MAX_LIST:
            return answer(400, {"error": "invalid-limit", "field": "limit",
                                "message": f"limit: must be an integer between 1 and {MAX_LIST}"})
        return answer(200, {"jobs": self.jobs.recent(client, limit)})

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

    def _publish(self, job: JobRequest, client: str) -> dict:
        job_id = str(uuid.uuid4())
        submitted_at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        body, attributes = job_message(job, job_id, submitted_at, client)
        try:
            # The record first: a job id the client is given is always one GET /jobs/{id} finds.
            self.jobs.record(client, job_id, {"jobId": job_id, "runtime": job.runtime,
                                              "task": job.task, "model": job.model,
                                              "submittedAt": submitted_at})
            self.sns.publish(TopicArn=self.settings.topic_arn, Message=body,
                             MessageAttributes=attributes)
        except Exception as error:  # noqa: BLE001 - any failure means "not queued"
            log.error("job %s not queued: publish failed: %s", job_id, type(error).__name__)
            self.jobs.forget(client, job_id)
            return answer(503, {"error": "queue-unavailable",
                                "message": "the job could not be queued; nothing was submitted, "
                                           "retry later"}, {"Retry-After": "5"})
        log.info("job %s queued for runtime %s (%s)", job_id, job.runtime, job.task)
        return answer(202, {"jobId": job_id, "status": "queued", "runtime": job.runtime,
                            "task": job.task, "submittedAt": submitted_at,
                            "results": results_location(self.settings.results_bucket, job_id)})
