"""Message bodies the agent accepts (raw and SNS envelope) and those that are poison."""

import json
import uuid

import pytest
from sdfleet_agent.errors import PoisonMessage
from sdfleet_agent.message import parse_job


def job_body(**changes) -> dict:
    body = {"schema": "sdfleet.job/v1", "jobId": str(uuid.uuid4()), "runtime": "sd-a",
            "task": "txt2img", "model": None, "params": {"prompt": "a lighthouse"},
            "initImages": [], "submittedAt": "2026-01-01T00:00:00.000+00:00",
            "client": "client-a"}
    body.update(changes)
    return body


def test_raw_delivery_body_is_a_job():
    body = job_body()
    job = parse_job(json.dumps(body), "sd-a")
    assert (job.job_id, job.task, job.params) == (body["jobId"], "txt2img", body["params"])


def test_sns_envelope_is_unwrapped():
    body = job_body()
    envelope = {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:x:1:jobs",
                "Message": json.dumps(body), "Timestamp": "2026-01-01T00:00:00Z",
                "MessageAttributes": {"runtime": {"Type": "String", "Value": "sd-a"}}}
    assert parse_job(json.dumps(envelope), "sd-a").job_id == body["jobId"]


@pytest.mark.parametrize("body, why", [
    ("not json at all", "not JSON"),
    ("[1, 2]", "not an object"),
    (json.dumps({"hello": "world"}), "schema"),
    (json.dumps(job_body(jobId="../../etc/passwd")), "jobId"),
    (json.dumps(job_body(runtime="sd-b")), "runtime 'sd-b'"),
    (json.dumps(job_body(task="upscale")), "task"),
    (json.dumps(job_body(task="img2img")), "without init images"),
    (json.dumps({"Type": "Notification", "TopicArn": "t", "Message": "{broken"}), "not JSON"),
])
def test_poison_bodies_are_refused_with_a_reason(body, why):
    with pytest.raises(PoisonMessage, match=why.replace("(", r"\(")):
        parse_job(body, "sd-a")
