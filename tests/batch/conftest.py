"""Fixtures of the batch tests: one moto server per session (each test makes its own,
uniquely named resources in it), a stub WebUI per test, and agents as child processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from testing.batch.aws import MotoServer, create_stack
from testing.batch.processes import AGENT_DIR, ROOT, SUBMIT_DIR, AgentProcess, StubWebUi

WEBUI_IMAGE_DIR = ROOT / "images" / "webui"
# The store's models as the stack config names them, and the files the fetcher put them in
# (the stub WebUIs list the same files).
STORE_MODELS = {"sd15": ("checkpoint", "Stable-diffusion/v1-5-pruned-emaonly.safetensors"),
                "sdxl-base": ("checkpoint", "Stable-diffusion/sdxl-base-1.0.safetensors"),
                "sdxl-vae": ("vae", "VAE/sdxl_vae.safetensors")}
DEFAULT_CHECKPOINT = "sdxl-base"

# The submit function's and the agent's packages, importable the way their archive and
# image lay them out (top-level `sdfleet_submit`, `sdfleet_agent`).
for folder in (SUBMIT_DIR, AGENT_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def write_model_store(root: Path) -> Path:
    """A model store whose manifest is written by the WebUI image's own Manifest (the fetcher's
    code), so the agent reads exactly what a model sync writes."""
    sys.path.insert(0, str(WEBUI_IMAGE_DIR))
    try:
        from sdfleet_webui.manifest import Manifest, VerifiedFile
    finally:
        sys.path.remove(str(WEBUI_IMAGE_DIR))
    manifest = Manifest(root)
    for name, (kind, path) in STORE_MODELS.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"weights")
        manifest.record(VerifiedFile(name=name, kind=kind, path=path, size=7,
                                     sha256="0" * 64, source=f"test:{name}"))
    manifest.set_default_checkpoint(DEFAULT_CHECKPOINT, STORE_MODELS[DEFAULT_CHECKPOINT][1])
    return root


@pytest.fixture(scope="session")
def model_store(tmp_path_factory) -> Path:
    return write_model_store(tmp_path_factory.mktemp("models"))


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


def agent_env(stack, webui, runtime: str = "sd-a", models_root: Path | None = None,
              **overrides) -> dict:
    """The agent's environment as the EKS deployment sets it, with test-sized durations."""
    env = {**stack.moto.child_env(),
           "MODELS_ROOT": str(models_root or "/nonexistent-model-store"),
           "MAX_RECEIVE_COUNT": str(stack.max_receive_count),
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
def start_agent(stack, webui, model_store):
    """start_agent(**env overrides) -> a running AgentProcess; all stopped after the test."""
    agents: list[AgentProcess] = []

    def start(**overrides) -> AgentProcess:
        agent = AgentProcess(agent_env(stack, webui, models_root=model_store,
                                       **overrides)).start()
        agents.append(agent)
        return agent

    yield start
    for agent in agents:
        agent.stop()
