"""Where a job's results go, and the completion notice.

S3 layout (bucket = RESULTS_BUCKET, layout.py), all keys derived from the job id only, so a
rerun of the same job overwrites its own objects and never adds a second set:

    results/<jobId>/status.json                     the current attempt: running / retrying
    results/<jobId>/image-0.png, image-1.png, ...   the generated images
    results/<jobId>/result.json                     written last: its presence means done

The submit function's `GET /jobs/{id}` reads these to answer the client.

The completion notice goes to COMPLETION_TOPIC_ARN after result.json is written. Notices
are at-least-once (a crash between notice and delete repeats it): consumers key on jobId.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from .layout import RESULTS_PREFIX, image_key, job_prefix, result_key, status_key  # noqa: F401
from .message import Job

RESULT_SCHEMA = "sdfleet.result/v1"
STATUS_SCHEMA = "sdfleet.status/v1"
NOTICE_SCHEMA = "sdfleet.completion/v1"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ResultStore:
    def __init__(self, s3_client, sns_client, bucket: str, topic_arn: str):
        self.s3, self.sns, self.bucket, self.topic_arn = s3_client, sns_client, bucket, topic_arn

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def finished_result(self, job_id: str) -> dict | None:
        """The result.json of a job that already succeeded (a redelivered message), if any."""
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=result_key(job_id))["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        result = json.loads(body)
        return result if result.get("status") == "succeeded" else None

    def write_status(self, job: Job, status: str, attempt: int, started_at: str,
                     error: str | None = None) -> None:
        """The current attempt, for `GET /jobs/{id}` (running, or retrying after `error`)."""
        body = {"schema": STATUS_SCHEMA, "jobId": job.job_id, "status": status,
                "attempt": attempt, "startedAt": started_at, "updatedAt": now(), "error": error}
        self.s3.put_object(Bucket=self.bucket, Key=status_key(job.job_id),
                           Body=json.dumps(body).encode(), ContentType="application/json")

    def write_success(self, job: Job, images: list[bytes], model_title: str | None, info,
                      attempt: int, started_at: str) -> dict:
        keys = []
        for index, image in enumerate(images):
            key = image_key(job.job_id, index)
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=image, ContentType="image/png")
            keys.append(key)
        result = self._result(job, "succeeded", attempt, started_at, webui_model=model_title,
                              images=[self.uri(k) for k in keys], info=info)
        self._put_result(job.job_id, result)
        return result

    def write_failure(self, job: Job, error: str, attempt: int, started_at: str) -> dict:
        result = self._result(job, "failed", attempt, started_at, error=error)
        self._put_result(job.job_id, result)
        return result

    def notify(self, result: dict) -> None:
        notice = {"schema": NOTICE_SCHEMA, "jobId": result["jobId"], "runtime": result["runtime"],
                  "status": result["status"], "resultJson": self.uri(result_key(result["jobId"])),
                  "images": result["images"], "error": result["error"],
                  "finishedAt": result["finishedAt"]}
        self.sns.publish(TopicArn=self.topic_arn, Message=json.dumps(notice),
                         MessageAttributes={
                             "runtime": {"DataType": "String", "StringValue": result["runtime"]},
                             "status": {"DataType": "String", "StringValue": result["status"]}})

    def _result(self, job: Job, status: str, attempt: int, started_at: str, *,
                webui_model: str | None = None, images: list[str] | None = None, info=None,
                error: str | None = None) -> dict:
        return {"schema": RESULT_SCHEMA, "jobId": job.job_id, "runtime": job.runtime,
                "task": job.task, "status": status, "model": job.model,
                "webuiModel": webui_model,
                "images": images or [], "info": info, "error": error, "attempt": attempt,
                "submittedAt": job.submitted_at, "startedAt": started_at, "finishedAt": now()}

    def _put_result(self, job_id: str, result: dict) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=result_key(job_id),
                           Body=json.dumps(result, indent=1).encode(),
                           ContentType="application/json")
