"""The queue agent as a real process: jobs from submit to S3 and a completion notice, and
every way a job can fail without being lost."""

from __future__ import annotations

import hashlib
import json
import time

from testing.batch.processes import StubWebUi, wait_until
from tests.batch.jobs import submit, upload_init_image


def finished(stack, job_id):
    return lambda: stack.result(job_id)


def test_job_flows_from_submit_to_s3_and_a_completion_notice(stack, webui, start_agent):
    job_id = submit(stack, prompt="a red fox in snow", batch_size=2, n_iter=1, model="sd15")
    agent = start_agent()
    result = wait_until(finished(stack, job_id), 20, what="result.json")
    assert result["status"] == "succeeded" and result["jobId"] == job_id
    # the config's name, and the checkpoint the WebUI loaded for its file
    assert result["model"] == "sd15"
    assert result["webuiModel"] == "v1-5-pruned-emaonly.safetensors [6ce0161689]"
    assert stack.keys(f"results/{job_id}/") == [f"results/{job_id}/image-0.png",
                                                f"results/{job_id}/image-1.png",
                                                f"results/{job_id}/result.json",
                                                f"results/{job_id}/status.json"]
    image = stack.read(f"results/{job_id}/image-1.png")
    assert image.startswith(b"\x89PNG") and b"a red fox in snow#1" in image
    assert result["images"] == [f"s3://{stack.bucket}/results/{job_id}/image-{i}.png"
                                for i in range(2)]
    [notice] = wait_until(lambda: stack.notices(wait=0.2), 10, what="completion notice")
    assert notice["jobId"] == job_id and notice["status"] == "succeeded"
    assert notice["resultJson"] == f"s3://{stack.bucket}/results/{job_id}/result.json"
    # deleted only after all that: the queue and the dead-letter queue are empty
    wait_until(lambda: stack.counts(stack.queue_urls["sd-a"]) == (0, 0), 10, what="deletion")
    assert stack.counts(stack.dlq_urls["sd-a"]) == (0, 0)
    [call] = webui.calls()
    assert call["path"] == "/sdapi/v1/txt2img" and call["model"] == result["webuiModel"]
    agent.stop()
    assert agent.proc.returncode == 0, agent.log()


def test_img2img_reads_its_init_image_from_the_stacks_bucket(stack, webui, start_agent):
    picture = b"\x89PNG fake init image bytes"
    link = upload_init_image(stack, picture)
    job_id = submit(stack, task="img2img", init_images=[link], denoising_strength=0.3)
    start_agent()
    result = wait_until(finished(stack, job_id), 20, what="result.json")
    assert result["status"] == "succeeded" and result["task"] == "img2img"
    [call] = webui.calls()
    assert call["path"] == "/sdapi/v1/img2img"
    assert call["initImageSha256"] == [hashlib.sha256(picture).hexdigest()]


def test_model_is_chosen_by_its_config_name_never_the_closest(stack, webui, start_agent):
    close_only = submit(stack, model="sdxl")       # prefix of a configured name: not a match
    exact = submit(stack, model="sdxl-base")       # the stack config's name
    start_agent()
    failed = wait_until(finished(stack, close_only), 20, what="failed result.json")
    assert failed["status"] == "failed"
    assert "'sdxl' is not a checkpoint" in failed["error"]
    assert "available: sd15, sdxl-base" in failed["error"]  # says what is (no VAE among them)
    succeeded = wait_until(finished(stack, exact), 20, what="result.json")
    assert succeeded["model"] == "sdxl-base"
    # the WebUI got the checkpoint whose file the model sync stored for that name
    assert succeeded["webuiModel"] == "sdxl-base-1.0.safetensors [31e35c80fc]"
    assert [c["model"] for c in webui.calls()] == ["sdxl-base-1.0.safetensors [31e35c80fc]"]
    notices = {n["jobId"]: n["status"] for n in wait_until(lambda: stack.notices(0.5), 10)}
    assert notices == {close_only: "failed", exact: "succeeded"}
    # a job that can never succeed is recorded and notified, not retried
    wait_until(lambda: stack.counts(stack.queue_urls["sd-a"]) == (0, 0), 10, what="deletion")
    assert stack.counts(stack.dlq_urls["sd-a"]) == (0, 0)


def test_repeated_webui_failures_land_in_the_dead_letter_queue(stack, webui, start_agent):
    webui.configure(mode="500")
    job_id = submit(stack)
    agent = start_agent()
    [dead] = wait_until(lambda: stack.receive_all(stack.dlq_urls["sd-a"], wait=0.2), 30,
                        what="message in the dead-letter queue")
    assert json.loads(dead["Body"])["jobId"] == job_id
    assert webui.generation_count() == stack.max_receive_count  # one try per receive
    assert dead["MessageAttributes"]["sdfleet-reason"]["StringValue"].startswith("gave up after 3")
    # the client is told, once, on the last attempt; no image was half-written
    result = stack.result(job_id)
    assert result["status"] == "failed" and result["images"] == []
    assert result["error"].startswith("gave up after 3 attempts (the job is in the dead-letter")
    assert "WebUI answered 500" in result["error"]
    assert not [k for k in stack.keys() if k.endswith(".png")]
    [notice] = stack.notices(wait=0.2)
    assert notice["jobId"] == job_id and notice["status"] == "failed"
    assert stack.counts(stack.queue_urls["sd-a"]) == (0, 0)
    assert "WebUI answered 500" in agent.log()
    assert agent.proc.poll() is None  # still running


def test_a_transient_failure_is_retried_and_the_job_completes(stack, webui, start_agent):
    webui.configure(failTimes=1)
    job_id = submit(stack)
    start_agent()
    result = wait_until(finished(stack, job_id), 20, what="result.json")
    assert result["status"] == "succeeded" and result["attempt"] == 2
    assert webui.generation_count() == 2
    assert [n["jobId"] for n in stack.notices(wait=0.5)] == [job_id]


def test_a_hung_webui_times_out_and_the_job_is_retried(stack, webui, start_agent):
    webui.configure(mode="hang")
    job_id = submit(stack)
    agent = start_agent(JOB_TIMEOUT_SECONDS="1", RETRY_BACKOFF_BASE_SECONDS="1",
                        RETRY_BACKOFF_MAX_SECONDS="1")
    agent.wait_for_log("no answer within 1.0s", timeout=20)
    assert stack.result(job_id) is None
    webui.configure(mode="success")
    result = wait_until(finished(stack, job_id), 20, what="result.json")
    assert result["status"] == "succeeded" and result["attempt"] >= 2


def test_a_webui_crash_mid_job_is_retried_once_it_is_back(stack, webui, start_agent):
    webui.configure(mode="crash")
    job_id = submit(stack)
    agent = start_agent(RETRY_BACKOFF_BASE_SECONDS="1", RETRY_BACKOFF_MAX_SECONDS="1")
    wait_until(lambda: webui.proc.poll() is not None, 20, what="the WebUI to crash")
    agent.wait_for_log("not healthy: not taking jobs", timeout=20)
    revived = StubWebUi(port=webui.port).start()
    try:
        result = wait_until(finished(stack, job_id), 20, what="result.json")
        assert result["status"] == "succeeded" and result["attempt"] == 2
        assert revived.generation_count() == 1
    finally:
        revived.stop()


def test_no_message_is_taken_while_the_webui_is_unhealthy(stack, webui, start_agent):
    webui.configure(healthy=False)
    job_id = submit(stack)
    agent = start_agent()
    agent.wait_for_log("not healthy: not taking jobs")
    time.sleep(1.5)
    assert stack.counts(stack.queue_urls["sd-a"]) == (1, 0)  # visible: never received
    webui.configure(healthy=True)
    result = wait_until(finished(stack, job_id), 20, what="result.json")
    assert result["attempt"] == 1  # the unhealthy period cost no receive


def test_poison_messages_go_to_the_dead_letter_queue_and_the_agent_keeps_working(
        stack, webui, start_agent):
    stack.send_job("sd-a", "this is not json")
    stack.send_job("sd-a", {"schema": "sdfleet.job/v1", "jobId": "3f1e0c4a-1111-4222-8333-444455556666",
                            "runtime": "sd-b", "task": "txt2img", "params": {"prompt": "x"},
                            "client": "client-a"})
    agent = start_agent()
    dead = wait_until(lambda: stack.receive_all(stack.dlq_urls["sd-a"], wait=0.3), 20,
                      what="poison in the dead-letter queue")
    dead += stack.receive_all(stack.dlq_urls["sd-a"], wait=1.0)
    reasons = {m["Body"]: m["MessageAttributes"]["sdfleet-reason"]["StringValue"] for m in dead}
    assert len(reasons) == 2
    assert "not JSON" in reasons["this is not json"]
    assert any("for runtime 'sd-b'" in reason for reason in reasons.values())
    assert "sent to the dead-letter queue" in agent.log()
    job_id = submit(stack)
    assert wait_until(finished(stack, job_id), 20, what="result.json")["status"] == "succeeded"
    assert webui.generation_count() == 1 and agent.proc.poll() is None


def test_a_message_in_the_sns_envelope_is_processed(stack, webui, start_agent):
    job = {"schema": "sdfleet.job/v1", "jobId": "0b7f5a3e-2f4b-4c8e-9d61-5a0c3e8f9b12",
           "runtime": "sd-a", "task": "txt2img", "model": None, "client": "client-a",
           "params": {"prompt": "enveloped"}, "initImages": []}
    stack.send_job("sd-a", {"Type": "Notification", "MessageId": "x", "TopicArn":
                            stack.jobs_topic_arn, "Message": json.dumps(job)})
    start_agent()
    assert wait_until(finished(stack, job["jobId"]), 20)["status"] == "succeeded"


def test_a_rerun_overwrites_its_own_results_and_a_finished_job_is_not_regenerated(
        stack, webui, start_agent):
    job = {"schema": "sdfleet.job/v1", "jobId": "5c2d7e9a-0a1b-4c3d-8e5f-6a7b8c9d0e1f",
           "runtime": "sd-a", "task": "txt2img", "model": None, "client": "client-a",
           "params": {"prompt": "twice", "batch_size": 2}, "initImages": []}
    prefix = f"results/{job['jobId']}/"
    agent = start_agent()
    stack.send_job("sd-a", job)
    first = wait_until(finished(stack, job["jobId"]), 20)
    assert len(stack.keys(prefix)) == 4  # two images, result.json, status.json
    wait_until(lambda: stack.counts(stack.queue_urls["sd-a"]) == (0, 0), 10)
    # redelivered after it succeeded (e.g. the delete was lost): notice again, no new images.
    # A redelivery has a receive count above 1: receive and release it once to make one.
    stack.client("sqs").purge_queue(QueueUrl=stack.notices_queue_url)
    agent.stop()
    stack.send_job("sd-a", job)
    [again] = stack.receive_all(stack.queue_urls["sd-a"], wait=0.2, delete=False)
    stack.client("sqs").change_message_visibility(QueueUrl=stack.queue_urls["sd-a"],
                                                  ReceiptHandle=again["ReceiptHandle"],
                                                  VisibilityTimeout=0)
    start_agent()
    [notice] = wait_until(lambda: stack.notices(0.2), 10, what="repeated notice")
    assert notice["jobId"] == job["jobId"] and notice["status"] == "succeeded"
    wait_until(lambda: stack.counts(stack.queue_urls["sd-a"]) == (0, 0), 10)
    assert webui.generation_count() == 1
    # a rerun of a job that never finished (no result.json): same keys, overwritten
    stack.client("s3").delete_object(Bucket=stack.bucket, Key=f"{prefix}result.json")
    stack.send_job("sd-a", job)
    wait_until(lambda: webui.generation_count() == 2, 10)
    second = wait_until(finished(stack, job["jobId"]), 20)
    assert second["finishedAt"] != first["finishedAt"]
    assert stack.keys(prefix) == [f"{prefix}image-0.png", f"{prefix}image-1.png",
                                  f"{prefix}result.json", f"{prefix}status.json"]


def test_without_a_dead_letter_queue_url_poison_is_left_to_the_redrive_policy(
        stack, webui, start_agent):
    stack.send_job("sd-a", "{half a json")
    agent = start_agent(DEAD_LETTER_QUEUE_URL="")
    [dead] = wait_until(lambda: stack.receive_all(stack.dlq_urls["sd-a"], wait=0.2), 20,
                        what="poison moved by the redrive policy")
    assert dead["Body"] == "{half a json"
    assert stack.counts(stack.queue_urls["sd-a"]) == (0, 0)
    assert agent.log().count("body is not JSON") == stack.max_receive_count
    assert agent.proc.poll() is None
