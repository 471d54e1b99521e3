"""A client's jobs as the client sees them: records, status, presigned result and upload URLs.

Everything is read from the bucket (layout.py); a job is found only under the asking
client's own record prefix, so another client's job id answers 404 like an unknown one.

The status rule, in one place (`job_status`):

    result.json present                 succeeded | failed (final; failed says why, including
                                        "gave up after N attempts (dead-letter queue)")
    status.json running, fresh          running
    status.json running, older than an attempt may last
        ... and attempts left           queued (the attempt died; SQS gives it to another agent)
        ... on the last attempt         failed: the worker stopped during its last attempt and
                                        the queue's redrive policy dead-letters the message
    status.json retrying                queued, with the last attempt's error
    only the record                     queued
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from botocore.exceptions import ClientError

from .layout import JOBS_PREFIX, record_key, result_key, status_key, upload_prefix
from .settings import SubmitSettings

RECORD_SCHEMA = "sdfleet.record/v1"
MAX_LIST = 50


def _parse_time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def job_status(result: dict | None, status: dict | None, settings: SubmitSettings,
               now: datetime) -> tuple[str, str | None, int | None]:
    """(status, reason, attempt) of a job from its result.json and status.json."""
    if result:
        return result.get("status", "failed"), result.get("error"), result.get("attempt")
    if not status:
        return "queued", None, None
    attempt = status.get("attempt")
    if status.get("status") == "retrying":
        return "queued", status.get("error"), attempt
    started = _parse_time(status.get("updatedAt") or status.get("startedAt"))
    if started and (now - started).total_seconds() > settings.attempt_seconds:
        if (attempt or 0) >= settings.max_receive_count:
            return ("failed", f"the worker stopped during attempt {attempt}, the last one; the "
                    "job is in the dead-letter queue", attempt)
        return "queued", f"attempt {attempt} stopped; it will be retried", attempt
    return "running", None, attempt


class JobStore:
    def __init__(self, settings: SubmitSettings, s3_client):
        self.settings = settings
        self.s3 = s3_client
        self.bucket = settings.results_bucket

    def record(self, client: str, job_id: str, body: dict) -> None:
        data = {"schema": RECORD_SCHEMA, "client": client, **body}
        self.s3.put_object(Bucket=self.bucket, Key=record_key(client, job_id),
                           Body=json.dumps(data).encode(), ContentType="application/json")

    def forget(self, client: str, job_id: str) -> None:
        """Best effort: drop the record of a job that was never queued."""
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=record_key(client, job_id))
        except Exception:  # noqa: BLE001 - the answer (503, no job id) is what matters
            pass

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise

    def _presign(self, method: str, key: str, **params) -> str:
        return self.s3.generate_presigned_url(
            method, Params={"Bucket": self.bucket, "Key": key, **params},
            ExpiresIn=self.settings.url_expiry_seconds)

    def describe(self, client: str, job_id: str, now: datetime | None = None) -> dict | None:
        """The client's view of one of its jobs, or None if it has no such job."""
        record = self._read(record_key(client, job_id))
        if record is None:
            return None
        result = self._read(result_key(job_id))
        status = None if result else self._read(status_key(job_id))
        state, reason, attempt = job_status(result, status, self.settings,
                                            now or datetime.now(timezone.utc))
        view = {"jobId": job_id, "status": state, "runtime": record.get("runtime"),
                "task": record.get("task"), "model": record.get("model"),
                "submittedAt": record.get("submittedAt"), "attempt": attempt,
                "reason": reason, "images": []}
        if result and state == "succeeded":
            prefix = f"s3://{self.bucket}/"
            keys = [uri[len(prefix):] for uri in result.get("images", [])
                    if uri.startswith(prefix)]
            view["images"] = [{"url": self._presign("get_object", key), "key": key}
                              for key in keys]
            view["expiresIn"] = self.settings.url_expiry_seconds
            view["finishedAt"] = result.get("finishedAt")
            view["info"] = result.get("info")
        elif result:
            view["finishedAt"] = result.get("finishedAt")
        return view

    def recent(self, client: str, limit: int) -> list[dict]:
        """The client's most recent jobs (newest first), at most `limit`."""
        prefix = f"{JOBS_PREFIX}{client}/"
        objects: list[dict] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                      Prefix=prefix):
            objects += page.get("Contents", [])
        objects.sort(key=lambda o: o["LastModified"], reverse=True)
        jobs = []
        for obj in objects[:limit]:
            job_id = obj["Key"][len(prefix):].removesuffix(".json")
            view = self.describe(client, job_id)
            if view:
                jobs.append(view)
        return jobs

    def upload(self, client: str) -> dict:
        """A presigned PUT for one init image under the client's own upload prefix."""
        key = f"{upload_prefix(client)}{uuid.uuid4()}.png"
        return {"uploadUrl": self._presign("put_object", key, ContentType="image/png"),
                "method": "PUT", "headers": {"Content-Type": "image/png"},
                "initImage": f"s3://{self.bucket}/{key}",
                "expiresIn": self.settings.url_expiry_seconds}
