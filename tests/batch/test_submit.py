"""The submit Lambda against a real moto server: SNS -> filtered SQS queues per runtime.

The handler is called the way API Gateway's proxy integration calls it; the cold-start
tests import `handler.py` in a fresh interpreter, as Lambda does.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from sdfleet_submit.app import SubmitApp
from sdfleet_submit.settings import load_settings

from testing.batch.processes import SUBMIT_DIR
from tests.batch.jobs import CLIENT, CLIENT_ID, principal_arn

ALLOWED_HOST = "images.example.com"


def submit_env(stack, **overrides) -> dict:
    env = {"JOBS_TOPIC_ARN": stack.jobs_topic_arn, "RUNTIMES": ",".join(stack.runtimes),
           "RESULTS_BUCKET": stack.bucket, "ALLOWED_IMAGE_HOSTS": ALLOWED_HOST,
           "MAX_WIDTH": "1024", "MAX_HEIGHT": "768", "MAX_STEPS": "50", "MAX_BATCH_SIZE": "4",
           "MAX_N_ITER": "2", "MAX_PROMPT_CHARS": "500"}
    env.update(overrides)
    return env


@pytest.fixture
def app(stack):
    return SubmitApp(load_settings(submit_env(stack)), stack.client("sns"), stack.client("s3"))


def post(app, body, headers=None) -> tuple[int, dict]:
    event = {"resource": "/jobs", "path": "/jobs", "httpMethod": "POST",
             "headers": headers or {"Content-Type": "application/json"},
             "body": body if isinstance(body, str) else json.dumps(body),
             "isBase64Encoded": False,
             "requestContext": {"identity": {"apiKey": "k", "apiKeyId": "key-1",
                                             "userArn": principal_arn(CLIENT)}}}
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"])


def queued(stack) -> dict[str, list[dict]]:
    # moto delivers SNS -> SQS before publish returns, so a short look is enough
    return {runtime: stack.receive_all(url, wait=0.1) for runtime, url in stack.queue_urls.items()}


def nothing_queued(stack) -> bool:
    return all(stack.counts(url) == (0, 0) for url in stack.queue_urls.values())


def test_valid_job_is_published_to_its_runtime_queue_and_answered_202(app, stack):
    status, body = post(app, {"runtime": "sd-b", "prompt": "a red fox in snow", "width": 768,
                              "height": 512, "steps": 30, "model": "sdxl-base-1.0",
                              "batch_size": 2})
    assert status == 202, body
    job_id = body["jobId"]
    assert body["status"] == "queued" and body["runtime"] == "sd-b"
    assert body["results"] == {"bucket": stack.bucket, "prefix": f"results/{job_id}/",
                               "resultJson": f"s3://{stack.bucket}/results/{job_id}/result.json"}
    messages = queued(stack)
    assert messages["sd-a"] == []
    [message] = messages["sd-b"]
    assert message["MessageAttributes"]["runtime"]["StringValue"] == "sd-b"
    job = json.loads(message["Body"])
    assert job["jobId"] == job_id and job["schema"] == "sdfleet.job/v1"
    assert job["model"] == "sdxl-base-1.0" and job["task"] == "txt2img"
    assert job["params"]["prompt"] == "a red fox in snow"
    assert (job["params"]["width"], job["params"]["batch_size"]) == (768, 2)


def test_img2img_from_the_clients_uploads_and_an_allowed_host_is_accepted(app, stack):
    links = [f"s3://{stack.bucket}/uploads/{CLIENT_ID}/cat.png", f"https://{ALLOWED_HOST}/cat.png"]
    status, body = post(app, {"runtime": "sd-a", "task": "img2img", "prompt": "a cat",
                              "init_images": links, "denoising_strength": 0.4})
    assert status == 202, body
    [message] = queued(stack)["sd-a"]
    job = json.loads(message["Body"])
    assert job["initImages"] == links and job["params"]["denoising_strength"] == 0.4


VALID = {"runtime": "sd-a", "prompt": "a lighthouse at dusk"}

BAD_FIELDS = [
    ("runtime", {"runtime": "sd-z"}, "sd-z", "unknown runtime"),
    ("runtime", {"runtime": None}, None, "string"),
    ("prompt", {"prompt": "   "}, "   ", "must not be empty"),
    ("prompt", {"prompt": "x" * 501}, None, "at most 500"),
    ("negative_prompt", {"negative_prompt": "y" * 501}, None, "at most 500"),
    ("width", {"width": 2048}, 2048, "between 64 and 1024"),
    ("width", {"width": 513}, 513, "multiple of 8"),
    ("width", {"width": "512"}, "512", "valid integer"),
    ("height", {"height": 1024}, 1024, "between 64 and 768"),
    ("steps", {"steps": 0}, 0, "between 1 and 50"),
    ("steps", {"steps": 51}, 51, "between 1 and 50"),
    ("steps", {"steps": True}, True, "valid integer"),
    ("batch_size", {"batch_size": 5}, 5, "between 1 and 4"),
    ("n_iter", {"n_iter": 3}, 3, "between 1 and 2"),
    ("cfg_scale", {"cfg_scale": 31}, 31, "less than or equal to 30"),
    ("seed", {"seed": -2}, -2, "greater than or equal to -1"),
    ("task", {"task": "upscale"}, "upscale", "txt2img"),
    ("model", {"model": ""}, "", "at least 1 character"),
    ("denoising_strength", {"denoising_strength": 0.5}, 0.5, "only allowed with task img2img"),
    ("init_images", {"task": "img2img"}, [], "at least one init image"),
    ("init_images", {"task": "img2img", "init_images": ["http://169.254.169.254/latest/meta-data"]},
     None, "scheme http is not allowed"),
    ("init_images", {"task": "img2img", "init_images": ["https://evil.example.net/a.png"]},
     None, "host 'evil.example.net' is not allowed"),
    ("init_images", {"task": "img2img", "init_images": ["s3://someone-elses-bucket/a.png"]},
     None, "only the client's own uploads"),
    ("init_images", {"task": "img2img", "init_images": [f"https://user@{ALLOWED_HOST}/a.png"]},
     None, "user info and ports are not allowed"),
    ("init_images", {"task": "img2img", "init_images": [f"https://{ALLOWED_HOST}:8443/a.png"]},
     None, "user info and ports are not allowed"),
    ("widht", {"widht": 512}, 512, "unknown field"),
]


@pytest.mark.parametrize("field, change, value, why", BAD_FIELDS,
                         ids=[f"{f}-{i}" for i, (f, *_rest) in enumerate(BAD_FIELDS)])
def test_bad_field_is_refused_with_400_naming_it_and_nothing_published(app, stack, field, change,
                                                                       value, why):
    status, body = post(app, {**VALID, **change})
    assert status == 400, body
    assert body["error"] == "invalid-job"
    assert body["field"] == field
    assert why in body["message"], body["message"]
    problem = body["problems"][0]
    assert problem["field"] == field
    if value is not None:
        assert problem["value"] == value
    if why == "unknown runtime":
        assert "sd-a, sd-b" in body["message"]  # says what is allowed
    assert nothing_queued(stack)


def test_missing_prompt_is_named(app, stack):
    status, body = post(app, {"runtime": "sd-a"})
    assert (status, body["field"], body["problems"][0]["value"]) == (400, "prompt", None)
    assert "required" in body["message"].lower()


@pytest.mark.parametrize("raw, why", [("", "missing"), ("{not json", "not valid JSON"),
                                      ("[1,2]", "must be a JSON object")])
def test_body_that_is_not_a_json_object_is_refused(app, stack, raw, why):
    status, body = post(app, raw)
    assert (status, body["field"]) == (400, "body") and why in body["message"]
    assert nothing_queued(stack)


def test_only_the_routes_methods_are_allowed(app):
    response = app({"resource": "/jobs/{id}", "httpMethod": "DELETE", "body": None}, None)
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "GET"


def test_publish_failure_answers_503_without_a_job_id(stack):
    missing_topic = stack.jobs_topic_arn + "-deleted"
    app = SubmitApp(load_settings(submit_env(stack, JOBS_TOPIC_ARN=missing_topic)),
                    stack.client("sns"), stack.client("s3"))
    status, body = post(app, VALID)
    assert status == 503 and "jobId" not in body and body["error"] == "queue-unavailable"


def test_request_headers_and_api_keys_are_never_logged(app, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "k3y-SHOULD-NEVER-APPEAR-0123456789"
    post(app, VALID, headers={"x-api-key": secret, "Authorization": f"Bearer {secret}"})
    post(app, {**VALID, "steps": 0}, headers={"x-api-key": secret})
    assert caplog.records, "expected the function to log something"
    assert secret not in caplog.text


def run_handler(env: dict, event: dict | None) -> subprocess.CompletedProcess:
    """Import handler.py in a fresh interpreter (a cold start) and optionally invoke it."""
    code = ("import json, sys, handler\n"
            "event = json.load(sys.stdin)\n"
            "print(json.dumps(handler.handler(event, None)) if event else 'ready')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=SUBMIT_DIR, env=env, text=True,
                          input=json.dumps(event), capture_output=True, timeout=60)


def test_cold_start_with_bad_configuration_fails_naming_each_variable(stack):
    env = {**stack.moto.child_env(), **submit_env(stack, RUNTIMES="sd-a,Bad_Name", MAX_STEPS="many")}
    env.pop("RESULTS_BUCKET")
    result = run_handler(env, None)
    assert result.returncode != 0
    assert "RESULTS_BUCKET" in result.stderr and "ConfigError" in result.stderr
    env["RESULTS_BUCKET"] = stack.bucket
    result = run_handler(env, None)
    assert result.returncode != 0
    assert "RUNTIMES='sd-a,Bad_Name'" in result.stderr and "MAX_STEPS='many'" in result.stderr


def test_handler_module_publishes_like_the_lambda_runtime(stack):
    env = {**stack.moto.child_env(), **submit_env(stack)}
    result = run_handler(env, {"httpMethod": "POST", "resource": "/jobs",
                               "body": json.dumps(VALID), "headers": {"x-api-key": "secret"},
                               "isBase64Encoded": False,
                               "requestContext": {"identity": {"apiKeyId": "key-1",
                                                               "userArn": principal_arn(CLIENT)}}})
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["statusCode"] == 202
    [message] = queued(stack)["sd-a"]
    assert json.loads(message["Body"])["jobId"] == json.loads(response["body"])["jobId"]


def _as(app, client_identity: dict, method="GET", resource="/jobs") -> tuple[int, dict]:
    event = {"resource": resource, "httpMethod": method, "headers": {}, "body": None,
             "isBase64Encoded": False, "queryStringParameters": None,
             "requestContext": {"identity": client_identity}}
    response = app(event, None)
    return response["statusCode"], json.loads(response["body"])


def test_an_api_key_alone_is_not_an_identity(app):
    """AWS advises against API keys as authentication: a request API Gateway did not verify
    as an IAM principal (SigV4) is refused, whatever key it carries."""
    status, body = _as(app, {"apiKeyId": "key-1", "apiKey": "k"})
    assert status == 403 and body["error"] == "no-identity" and "SigV4" in body["message"]
    for bad in ("client-a", "arn:aws:iam::123:user/short-account", "arn:aws:s3:::bucket"):
        assert _as(app, {"apiKeyId": "key-1", "userArn": bad})[0] == 403, bad


def test_jobs_belong_to_the_principal_not_the_key(app, stack):
    """Rotating a key orphaned its jobs when the key was the owner."""
    code, job = post(app, VALID)
    assert code == 202
    rotated = {"apiKeyId": "key-2-after-rotation", "userArn": principal_arn(CLIENT)}
    status, listing = _as(app, rotated)
    assert status == 200 and job["jobId"] in json.dumps(listing)
    stranger = {"apiKeyId": "key-1", "userArn": principal_arn("someone-else")}
    status, listing = _as(app, stranger)
    assert status == 200 and job["jobId"] not in json.dumps(listing)


def test_an_assumed_role_session_is_a_principal():
    from sdfleet_submit.app import client_id, client_of
    arn = "arn:aws:sts::123456789012:assumed-role/AWSReservedSSO_Artists_0123/ana@example.com"
    event = {"requestContext": {"identity": {"userArn": arn}}}
    assert client_of(event) == client_id(arn) != client_id(principal_arn(CLIENT))
    assert len(client_id(arn)) == 36 and client_id(arn).startswith("iam-")
