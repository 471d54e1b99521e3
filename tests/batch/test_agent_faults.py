"""The agent's process life: killed mid-job, two agents on one long job, SIGTERM with and
without enough grace, ScaledJob mode, bad configuration. Nothing is ever lost and no job
completes twice."""

from __future__ import annotations

import json
import signal
import time

from testing.batch.processes import AgentProcess, wait_until
from tests.batch.conftest import agent_env
from tests.batch.jobs import submit


def started_generations(webui) -> int:
    return webui.generation_count()


def test_agent_killed_mid_job_loses_nothing_and_the_job_completes_exactly_once(
        stack, webui, start_agent):
    webui.configure(mode="slow", slowSeconds=2)
    job_id = submit(stack)
    first = start_agent()
    wait_until(lambda: started_generations(webui) == 1, 20, what="generation to start")
    first.kill()  # SIGKILL: no chance to release or delete anything
    assert stack.counts(stack.queue_urls["sd-a"]) == (0, 1)  # still there, leased
    assert stack.result(job_id) is None
    second = start_agent()
    result = wait_until(lambda: stack.result(job_id), 30, what="result.json")
    assert result["status"] == "succeeded" and result["attempt"] == 2
    time.sleep(1.0)  # room for a duplicate, if there were one
    assert [n["jobId"] for n in stack.notices(wait=0.5)] == [job_id]
    assert webui.generation_count() == 2  # the killed attempt and the one that finished
    wait_until(lambda: stack.counts(stack.queue_urls["sd-a"]) == (0, 0), 10, what="deletion")
    assert stack.counts(stack.dlq_urls["sd-a"]) == (0, 0)
    assert second.proc.poll() is None


def test_a_job_longer_than_the_visibility_timeout_is_not_run_twice(stack, webui, start_agent):
    webui.configure(mode="slow", slowSeconds=6)
    job_id = submit(stack)
    agents = [start_agent(VISIBILITY_TIMEOUT_SECONDS="3", HEARTBEAT_SECONDS="0.5")
              for _ in range(2)]
    result = wait_until(lambda: stack.result(job_id), 30, what="result.json")
    time.sleep(1.0)  # a lapsed lease would have shown up as a second generation by now
    assert result["attempt"] == 1
    assert webui.generation_count() == 1
    assert [n["jobId"] for n in stack.notices(wait=0.5)] == [job_id]
    assert all(a.proc.poll() is None for a in agents)


def test_sigterm_lets_the_running_job_finish_within_the_grace_period(stack, webui, start_agent):
    webui.configure(mode="slow", slowSeconds=2)
    job_id = submit(stack)
    agent = start_agent(SHUTDOWN_GRACE_SECONDS="10")
    wait_until(lambda: webui.generation_count() == 1, 20, what="generation to start")
    agent.terminate()
    assert agent.wait(timeout=15) == 0, agent.log()
    assert stack.result(job_id)["status"] == "succeeded"
    assert stack.counts(stack.queue_urls["sd-a"]) == (0, 0)
    assert [n["jobId"] for n in stack.notices(wait=0.5)] == [job_id]


def test_sigterm_releases_a_job_that_outlasts_the_grace_period(stack, webui, start_agent):
    webui.configure(mode="hang")
    job_id = submit(stack)
    agent = start_agent(SHUTDOWN_GRACE_SECONDS="1", VISIBILITY_TIMEOUT_SECONDS="60",
                        HEARTBEAT_SECONDS="1")
    wait_until(lambda: webui.generation_count() == 1, 20, what="generation to start")
    signalled = time.monotonic()
    agent.terminate()
    assert agent.wait(timeout=10) == 0, agent.log()
    assert time.monotonic() - signalled < 5
    # requeued: visible again at once, not after the 60 s lease, as a new message whose
    # receive count starts again (the interruption spends none of maxReceiveCount's tries)
    [message] = stack.receive_all(stack.queue_urls["sd-a"], wait=0.5, delete=False)
    assert json.loads(message["Body"])["jobId"] == job_id
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert message["MessageAttributes"]["sdfleet-interruptions"]["StringValue"] == "1"
    from sdfleet_agent.layout import status_key
    status = json.loads(stack.read(status_key(job_id)))
    assert status["status"] == "retrying" and "requeued" in status["error"]
    assert webui.state()["interrupts"] == 1  # asked the WebUI to stop the abandoned work
    assert stack.result(job_id) is None


def test_sigterm_while_idle_stops_promptly(stack, webui, start_agent):
    agent = start_agent(WAIT_TIME_SECONDS="2")
    agent.wait_for_log("WebUI healthy")
    time.sleep(0.3)
    agent.signal(signal.SIGTERM)
    assert agent.wait(timeout=6) == 0
    assert "agent stopped" in agent.log()


def test_job_mode_processes_one_job_and_exits_cleanly(stack, webui, start_agent):
    first, second = submit(stack, prompt="first"), submit(stack, prompt="second")
    agent = start_agent(AGENT_MODE="job")
    assert agent.wait(timeout=20) == 0, agent.log()
    done = [j for j in (first, second) if stack.result(j)]
    assert len(done) == 1 and webui.generation_count() == 1
    assert stack.counts(stack.queue_urls["sd-a"]) == (1, 0)  # the other job waits, untouched


def test_job_mode_exits_cleanly_when_the_queue_is_empty(stack, webui, start_agent):
    agent = start_agent(AGENT_MODE="job", JOB_MODE_EMPTY_POLLS="1")
    assert agent.wait(timeout=15) == 0
    assert "no job in the queue" in agent.log()


def test_job_mode_gives_up_without_taking_a_job_when_the_webui_never_gets_healthy(
        stack, webui, start_agent):
    webui.configure(healthy=False)
    submit(stack)
    agent = start_agent(AGENT_MODE="job", STARTUP_TIMEOUT_SECONDS="1")
    assert agent.wait(timeout=15) == 1
    assert stack.counts(stack.queue_urls["sd-a"]) == (1, 0)


def test_bad_configuration_exits_2_naming_each_variable(stack, webui):
    def refused(**changes) -> str:
        env = {**agent_env(stack, webui), **changes}
        for name in [n for n, v in changes.items() if v is None]:
            env.pop(name)
        agent = AgentProcess(env).start()
        assert agent.wait(timeout=20) == 2, agent.log()
        return agent.log()

    assert "COMPLETION_TOPIC_ARN" in refused(COMPLETION_TOPIC_ARN=None)
    both = refused(AGENT_MODE="batch", WAIT_TIME_SECONDS="30")
    assert "AGENT_MODE='batch'" in both and "WAIT_TIME_SECONDS='30'" in both
    assert "HEARTBEAT_SECONDS (5.0) must be at most half" in refused(
        HEARTBEAT_SECONDS="5", VISIBILITY_TIMEOUT_SECONDS="6")
    assert stack.counts(stack.queue_urls["sd-a"]) == (0, 0)


def test_sigterm_releases_at_once_a_job_the_webui_says_cannot_fit(stack, webui, start_agent):
    """A Spot interruption leaves ~2 minutes. A job whose remaining time (A1111's
    own eta_relative) exceeds what is left of the grace is released at once, not held until
    the grace runs out, so another agent starts it minutes earlier."""
    webui.configure(mode="slow", slowSeconds=40)
    job_id = submit(stack)
    agent = start_agent(SHUTDOWN_GRACE_SECONDS="20", VISIBILITY_TIMEOUT_SECONDS="60",
                        HEARTBEAT_SECONDS="1", JOB_TIMEOUT_SECONDS="60")
    wait_until(lambda: webui.generation_count() == 1, 20, what="generation to start")
    signalled = time.monotonic()
    agent.terminate()
    assert agent.wait(timeout=25) == 0, agent.log()
    assert time.monotonic() - signalled < 6, "waited for a grace the job could not use"
    [message] = stack.receive_all(stack.queue_urls["sd-a"], wait=0.5, delete=False)
    assert json.loads(message["Body"])["jobId"] == job_id
    assert webui.state()["interrupts"] == 1
    assert "the job needs about" in agent.log()
    assert stack.result(job_id) is None


def test_three_spot_interruptions_do_not_send_a_good_job_to_the_dead_letter_queue(
        stack, webui, start_agent):
    """maxReceiveCount is 3 here: with interruptions counted as tries, the third one would
    dead-letter a job that never failed."""
    webui.configure(mode="hang")
    job_id = submit(stack)
    for interruption in range(1, 4):
        agent = start_agent(SHUTDOWN_GRACE_SECONDS="0.5", HEARTBEAT_SECONDS="1")
        wait_until(lambda: webui.generation_count() == interruption, 20,
                   what=f"generation {interruption} to start")
        agent.terminate()
        assert agent.wait(timeout=10) == 0, agent.log()
    assert stack.counts(stack.dlq_urls["sd-a"]) == (0, 0)
    webui.configure(mode="success")
    start_agent()
    result = wait_until(lambda: stack.result(job_id), 30, what="result.json")
    assert result["status"] == "succeeded"
    assert stack.counts(stack.dlq_urls["sd-a"]) == (0, 0)
