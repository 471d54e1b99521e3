"""The queue agent's settings: pydantic-settings over the agent's env,
names and limits in one module, errors naming variable, value and what is allowed."""

from __future__ import annotations

import pytest
from sdfleet_agent.settings import REQUIRED, AgentSettings, ConfigError, load_settings

BASE = {"QUEUE_URL": "http://127.0.0.1:1/q", "RUNTIME": "sd-a", "RESULTS_BUCKET": "results-1",
        "COMPLETION_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:done"}


def test_required_names_follow_the_fields():
    assert set(REQUIRED) == {"QUEUE_URL", "RUNTIME", "RESULTS_BUCKET", "COMPLETION_TOPIC_ARN"}
    assert all(f.validation_alias for f in AgentSettings.model_fields.values())


def test_hosts_are_comma_separated_and_empty_means_unset():
    s = load_settings({**BASE, "ALLOWED_IMAGE_HOSTS": " a.example , b.example,,",
                       "WEBUI_URL": "", "HEARTBEAT_SECONDS": " "})
    assert s.allowed_image_hosts == ("a.example", "b.example")
    assert s.webui_url == "http://127.0.0.1:7860" and s.heartbeat_seconds == 30.0


@pytest.mark.parametrize("variable, value, allowed", [
    ("VISIBILITY_TIMEOUT_SECONDS", "1", "greater than or equal to 2"),
    ("WEBUI_FRAMEWORK", "sdnext", "'automatic1111' or 'comfyui'"),
    ("QUEUE_URL", "sqs://x", "should match pattern"),
    ("MAX_INIT_IMAGE_BYTES", "lots", "valid integer"),
])
def test_a_bad_value_names_variable_value_and_limit(variable, value, allowed):
    with pytest.raises(ConfigError) as error:
        load_settings({**BASE, variable: value})
    assert f"{variable}={value!r}" in str(error.value) and allowed in str(error.value)
