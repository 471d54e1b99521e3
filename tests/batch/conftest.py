"""Fixtures of the batch tests: one moto server per session (each test makes its own,
uniquely named resources in it), a stub WebUI per test, and agents as child processes."""

from __future__ import annotations

import sys

import pytest

from tests.batch.aws import MotoServer, create_stack
from tests.batch.processes import AGENT_DIR, SUBMIT_DIR, AgentProcess, StubWebUi

# The submit function's and the agent's packages, importable the way their archive and
# image lay them out (top-level `sdfleet_submit`, `sdfleet_agent`).
for folder in (SUBMIT_DIR, AGENT_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


@pytest.fixture(scope="session")
def moto_server():
    server = MotoServer().start(timeout=60)
    yield server
    server.stop()


@pytest.fixture
def stack(moto_server):
    return create_stack(moto_server)


@pytest.fixture
def webui():
    server = StubWebUi().start()
    yield server
    server.stop()


def agent_env(stack, webui, runtime: str = "sd-a", **overrides) -> dict:
    """The agent's environment as the EKS deployment sets it, with test-sized durations."""
    env = {**stack.moto.child_env(),
           "QUEUE_URL": stack.queue_urls[runtime], "RUNTIME": runtime,
           "RESULTS_BUCKET": stack.bucket, "COMPLETION_TOPIC_ARN": stack.completion_topic_arn,
           "DEAD_LETTER_QUEUE_URL": stack.dlq_urls[runtime], "WEBUI_URL": webui.url,
           "VISIBILITY_TIMEOUT_SECONDS": "4", "HEARTBEAT_SECONDS": "1",
           "JOB_TIMEOUT_SECONDS": "20", "WAIT_TIME_SECONDS": "1", "HEALTH_RETRY_SECONDS": "0.2",
           "SHUTDOWN_GRACE_SECONDS": "10", "RETRY_BACKOFF_BASE_SECONDS": "0",
           "RETRY_BACKOFF_MAX_SECONDS": "0", "LOG_LEVEL": "INFO"}
    env.update({key: str(value) for key, value in overrides.items()})
    return env


@pytest.fixture
def start_agent(stack, webui):
    """start_agent(**env overrides) -> a running AgentProcess; all stopped after the test."""
    agents: list[AgentProcess] = []

    def start(**overrides) -> AgentProcess:
        agent = AgentProcess(agent_env(stack, webui, **overrides)).start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()
