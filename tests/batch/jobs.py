"""Submitting jobs in tests through the real submit function (SNS -> filtered SQS)."""

from __future__ import annotations

import json

from sdfleet_submit.app import SubmitApp, client_id
from sdfleet_submit.settings import load_settings

# A client is an IAM principal (SigV4); tests name them, and store under their ids.
CLIENT = "client-a"


def principal_arn(client: str) -> str:
    return f"arn:aws:iam::123456789012:user/{client}"


CLIENT_ID = client_id(principal_arn(CLIENT))


def submit_app(stack, **env) -> SubmitApp:
    settings = load_settings({"JOBS_TOPIC_ARN": stack.jobs_topic_arn,
                              "RUNTIMES": ",".join(stack.runtimes),
                              "RESULTS_BUCKET": stack.bucket, **env})
    return SubmitApp(settings, stack.client("sns"), stack.client("s3"))


def api_event(method: str, resource: str, body=None, client: str | None = CLIENT,
              path_id: str | None = None, query: dict | None = None) -> dict:
    """An API Gateway REST proxy event, as the stage sends it after checking the SigV4
    signature (AWS_IAM) and the API key."""
    identity = {"userArn": principal_arn(client), "caller": "AIDAEXAMPLE",
                "apiKeyId": "key-1", "apiKey": "the-key-itself"} if client else {}
    return {"resource": resource, "httpMethod": method, "headers": {},
            "pathParameters": {"id": path_id} if path_id else None,
            "queryStringParameters": query,
            "body": None if body is None else (body if isinstance(body, str) else json.dumps(body)),
            "isBase64Encoded": False, "requestContext": {"identity": identity}}


def submit(stack, client: str = CLIENT, **fields) -> str:
    """Submit one job through the submit function; returns its job id."""
    job = {"runtime": "sd-a", "prompt": "a lighthouse at dusk", **fields}
    response = submit_app(stack)(api_event("POST", "/jobs", job, client=client), None)
    assert response["statusCode"] == 202, response["body"]
    return json.loads(response["body"])["jobId"]


def upload_init_image(stack, data: bytes, client: str = CLIENT) -> str:
    """Put an init image where the client may name it (its own uploads); its s3:// link."""
    response = submit_app(stack)(api_event("POST", "/uploads", client=client), None)
    assert response["statusCode"] == 200, response["body"]
    link = json.loads(response["body"])["initImage"]
    key = link.split("/", 3)[3]
    stack.client("s3").put_object(Bucket=stack.bucket, Key=key, Body=data)
    return link
