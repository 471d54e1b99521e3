"""A real moto server on loopback and the batch stack's AWS resources inside it.

The resources mirror what the Pulumi EKS deployment creates: a jobs topic, one SQS queue per
runtime subscribed with a `runtime` filter policy and raw message delivery, each with a
dead-letter queue (RedrivePolicy), a completion topic, and the results bucket. A "notices"
queue subscribed to the completion topic lets tests read the completion notices.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from botocore.config import Config

from testing.helpers.servers import ManagedProcess, free_port

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
               "AWS_REGION": REGION}


class MotoServer(ManagedProcess):
    def __init__(self):
        port = free_port()
        binary = str(Path(sys.executable).parent / "moto_server")
        super().__init__([binary, "-H", "127.0.0.1", "-p", str(port)], port=port,
                         log_name="moto")

    def child_env(self) -> dict:
        """What a child process needs to use this server through plain boto3."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.url}

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(retries={"mode": "standard", "max_attempts": 2}))


@dataclass
class BatchStack:
    moto: MotoServer
    jobs_topic_arn: str
    completion_topic_arn: str
    bucket: str
    queue_urls: dict[str, str]
    dlq_urls: dict[str, str]
    notices_queue_url: str
    max_receive_count: int
    clients: dict = field(default_factory=dict)

    @property
    def runtimes(self) -> list[str]:
        return list(self.queue_urls)

    def client(self, service: str):
        if service not in self.clients:
            self.clients[service] = self.moto.client(service)
        return self.clients[service]

    # -- reading queues -------------------------------------------------------------------

    def counts(self, queue_url: str) -> tuple[int, int]:
        """(visible, in flight) messages in a queue."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages",
                                                "ApproximateNumberOfMessagesNotVisible"])
        a = attrs["Attributes"]
        return int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"])

    def receive_all(self, queue_url: str, wait: float = 1.0, delete: bool = True) -> list[dict]:
        """Every message that becomes visible within `wait` seconds."""
        sqs, found, deadline = self.client("sqs"), [], time.monotonic() + wait
        while True:
            answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                         WaitTimeSeconds=0, MessageAttributeNames=["All"],
                                         MessageSystemAttributeNames=["All"])
            for message in answer.get("Messages", []):
                found.append(message)
                if delete:
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            if time.monotonic() >= deadline:
                return found
            if not answer.get("Messages"):
                time.sleep(0.1)

    def notices(self, wait: float = 1.0) -> list[dict]:
        return [json.loads(m["Body"]) for m in self.receive_all(self.notices_queue_url, wait)]

    # -- reading the bucket ---------------------------------------------------------------

    def keys(self, prefix: str = "") -> list[str]:
        answer = self.client("s3").list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in answer.get("Contents", []))

    def read(self, key: str) -> bytes:
        return self.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def result(self, job_id: str) -> dict | None:
        try:
            return json.loads(self.read(f"results/{job_id}/result.json"))
        except self.client("s3").exceptions.NoSuchKey:
            return None

    def send_job(self, runtime: str, body: dict | str) -> None:
        """Put a message on a runtime's queue directly (what SNS raw delivery does)."""
        text = body if isinstance(body, str) else json.dumps(body)
        self.client("sqs").send_message(QueueUrl=self.queue_urls[runtime], MessageBody=text)


def create_stack(moto: MotoServer, runtimes=("sd-a", "sd-b"), max_receive_count: int = 3,
                 queue_visibility: int = 30) -> BatchStack:
    suffix = uuid.uuid4().hex[:8]
    sns, sqs, s3 = moto.client("sns"), moto.client("sqs"), moto.client("s3")
    jobs_topic = sns.create_topic(Name=f"jobs-{suffix}")["TopicArn"]
    completion_topic = sns.create_topic(Name=f"done-{suffix}")["TopicArn"]
    bucket = f"results-{suffix}"
    s3.create_bucket(Bucket=bucket)

    def queue(name: str, attributes: dict | None = None) -> tuple[str, str]:
        url = sqs.create_queue(QueueName=name, Attributes=attributes or {})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return url, arn["Attributes"]["QueueArn"]

    queue_urls, dlq_urls = {}, {}
    for runtime in runtimes:
        dlq_url, dlq_arn = queue(f"{runtime}-dlq-{suffix}")
        url, arn = queue(f"{runtime}-{suffix}", {
            "VisibilityTimeout": str(queue_visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn,
                                         "maxReceiveCount": str(max_receive_count)})})
        sns.subscribe(TopicArn=jobs_topic, Protocol="sqs", Endpoint=arn,
                      Attributes={"RawMessageDelivery": "true",
                                  "FilterPolicy": json.dumps({"runtime": [runtime]})})
        queue_urls[runtime], dlq_urls[runtime] = url, dlq_url
    notices_url, notices_arn = queue(f"notices-{suffix}")
    sns.subscribe(TopicArn=completion_topic, Protocol="sqs", Endpoint=notices_arn,
                  Attributes={"RawMessageDelivery": "true"})
    return BatchStack(moto, jobs_topic, completion_topic, bucket, queue_urls, dlq_urls,
                      notices_url, max_receive_count)
