"""A client submits one job per runtime through the API and fetches its
images through `GET /jobs/{id}` and the presigned URLs, over HTTP, as a client would.

Real pieces: a moto server (SNS -> filtered SQS -> S3, presigned URLs served by it), the submit
function (called as API Gateway's proxy integration calls it, with the key id API Gateway
verified), two queue agents as processes, a stub AUTOMATIC1111 and a stub ComfyUI speaking
their real routes, and a model store whose manifest the WebUI image's own code wrote.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from testing.batch.processes import AgentProcess, StubComfyUi, wait_until
from tests.batch.conftest import agent_env
from tests.batch.jobs import CLIENT, api_event, submit_app

OTHER_CLIENT = "client-b"


@pytest.fixture
def comfyui():
    server = StubComfyUi().start()
    yield server
    server.stop()


@pytest.fixture
def agents(stack, webui, comfyui, model_store):
    """sd-a runs AUTOMATIC1111, sd-b runs ComfyUI."""
    started = [
        AgentProcess(agent_env(stack, webui, runtime="sd-a", models_root=model_store)).start(),
        AgentProcess(agent_env(stack, comfyui, runtime="sd-b", models_root=model_store,
                               WEBUI_FRAMEWORK="comfyui")).start()]
    yield started
    for agent in started:
        agent.stop()


def call(app, method: str, resource: str, body=None, client: str = CLIENT, **kwargs):
    response = app(api_event(method, resource, body, client=client, **kwargs), None)
    return response["statusCode"], json.loads(response["body"])


def http(url: str, method: str = "GET", data: bytes | None = None,
         headers: dict | None = None) -> bytes:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def finished_view(app, job_id: str):
    def check():
        status, view = call(app, "GET", "/jobs/{id}", path_id=job_id)
        assert status == 200, view
        return view if view["status"] in ("succeeded", "failed") else None
    return check


def test_a_client_gets_the_images_of_one_job_per_runtime(stack, webui, comfyui, model_store):
    app = submit_app(stack, MODELS="sd15,sdxl-base", URL_EXPIRY_SECONDS="300")
    status, a = call(app, "POST", "/jobs", {"runtime": "sd-a", "prompt": "a red fox in snow",
                                            "model": "sd15", "batch_size": 2})
    assert status == 202, a
    status, b = call(app, "POST", "/jobs", {"runtime": "sd-b", "prompt": "a blue heron",
                                            "model": "sdxl-base", "batch_size": 2, "seed": 42,
                                            "sampler_name": "DPM++ 2M Karras", "steps": 12})
    assert status == 202, b
    # before any worker runs: queued, no images
    status, view = call(app, "GET", "/jobs/{id}", path_id=a["jobId"])
    assert status == 200 and view["status"] == "queued" and view["images"] == []

    agents = [AgentProcess(agent_env(stack, webui, runtime="sd-a",
                                     models_root=model_store)).start(),
              AgentProcess(agent_env(stack, comfyui, runtime="sd-b", models_root=model_store,
                                     WEBUI_FRAMEWORK="comfyui")).start()]
    try:
        for job, prompt in ((a, "a red fox in snow"), (b, "a blue heron")):
            view = wait_until(finished_view(app, job["jobId"]), 30, what=f"{prompt} done")
            assert view["status"] == "succeeded", view
            assert view["expiresIn"] == 300 and len(view["images"]) == 2
            for index, image in enumerate(view["images"]):
                data = http(image["url"])  # the presigned URL, fetched like any client would
                assert data.startswith(b"\x89PNG") and f"{prompt}#{index}".encode() in data
    finally:
        for agent in agents:
            agent.stop()
    # ComfyUI got a workflow for the configured model's file, with the job's fields
    [prompt] = [c["prompt"] for c in comfyui.calls()]
    nodes = {n["class_type"]: n["inputs"] for n in prompt.values()}
    assert nodes["CheckpointLoaderSimple"]["ckpt_name"] == "sdxl-base-1.0.safetensors"
    assert (nodes["KSampler"]["sampler_name"], nodes["KSampler"]["scheduler"]) == (
        "dpmpp_2m", "karras")
    assert (nodes["KSampler"]["seed"], nodes["KSampler"]["steps"]) == (42, 12)
    assert nodes["EmptyLatentImage"]["batch_size"] == 2
    # A1111 got the checkpoint the model store holds for "sd15"
    assert [c["model"] for c in webui.calls()] == ["v1-5-pruned-emaonly.safetensors [6ce0161689]"]

    # another client sees neither job, and its list is empty; the owner lists both
    for job in (a, b):
        assert call(app, "GET", "/jobs/{id}", client=OTHER_CLIENT,
                    path_id=job["jobId"])[0] == 404
    assert call(app, "GET", "/jobs", client=OTHER_CLIENT, query={"limit": "5"}) == (200,
                                                                                   {"jobs": []})
    status, listed = call(app, "GET", "/jobs", query={"limit": "5"})
    assert status == 200
    assert {j["jobId"] for j in listed["jobs"]} == {a["jobId"], b["jobId"]}
    assert all(j["status"] == "succeeded" for j in listed["jobs"])


def test_img2img_on_comfyui_from_the_clients_own_presigned_upload(stack, comfyui, agents):
    app = submit_app(stack)
    status, upload = call(app, "POST", "/uploads")
    assert status == 200 and upload["method"] == "PUT"
    picture = b"\x89PNG the client's own init image"
    http(upload["uploadUrl"], "PUT", picture, upload["headers"])
    # another client may not name it
    status, refused = call(app, "POST", "/jobs", {
        "runtime": "sd-b", "task": "img2img", "prompt": "x",
        "init_images": [upload["initImage"]]}, client=OTHER_CLIENT)
    assert status == 400 and "only the client's own uploads" in refused["message"]
    status, job = call(app, "POST", "/jobs", {"runtime": "sd-b", "task": "img2img",
                                              "prompt": "a heron, watercolour",
                                              "init_images": [upload["initImage"]],
                                              "denoising_strength": 0.4})
    assert status == 202, job
    view = wait_until(finished_view(app, job["jobId"]), 30, what="img2img done")
    assert view["status"] == "succeeded", view
    assert b"a heron, watercolour#0" in http(view["images"][0]["url"])
    [prompt] = [c["prompt"] for c in comfyui.calls()]
    nodes = {n["class_type"]: n["inputs"] for n in prompt.values()}
    assert nodes["KSampler"]["denoise"] == 0.4
    # no model named: the store's default checkpoint (ComfyUI must name one)
    assert nodes["CheckpointLoaderSimple"]["ckpt_name"] == "sdxl-base-1.0.safetensors"


def test_a_job_that_keeps_failing_reads_failed_with_the_dead_letter_reason(stack, comfyui,
                                                                            agents):
    comfyui.configure(mode="error")
    app = submit_app(stack)
    status, job = call(app, "POST", "/jobs", {"runtime": "sd-b", "prompt": "never works"})
    assert status == 202
    view = wait_until(finished_view(app, job["jobId"]), 40, what="failed")
    assert view["status"] == "failed" and view["images"] == []
    assert view["reason"].startswith(f"gave up after {stack.max_receive_count} attempts (the "
                                     "job is in the dead-letter queue)")
    assert "CUDA out of memory" in view["reason"]
    [dead] = wait_until(lambda: stack.receive_all(stack.dlq_urls["sd-b"], wait=0.2), 10)
    assert json.loads(dead["Body"])["jobId"] == job["jobId"]



def test_a_workflow_comfyui_refuses_fails_once_with_its_reason(stack, comfyui, agents):
    comfyui.configure(checkpoints=["something-else.safetensors"])
    app = submit_app(stack)
    status, job = call(app, "POST", "/jobs", {"runtime": "sd-b", "prompt": "x",
                                              "model": "sdxl-base"})
    view = wait_until(finished_view(app, job["jobId"]), 30, what="failed")
    assert view["status"] == "failed" and view["attempt"] == 1  # permanent: not retried
    assert "ComfyUI refused the workflow" in view["reason"]
    assert "value_not_in_list" in view["reason"]
    assert comfyui.calls() == []
