"""The WebUI image's settings module: one place for env names, defaults and limits,
parsed by pydantic-settings, with errors naming variable, value, limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from sdfleet_webui import env
from sdfleet_webui import settings as st
from sdfleet_webui.fetch import FetchSettings
from sdfleet_webui.supervisor import SupervisorConfig

PACKAGE = Path(st.__file__).parent


@pytest.mark.parametrize("cls, variable, value, allowed", [
    (st.SupervisorSettings, env.WEBUI_PORT, "x", "valid integer"),
    (st.SupervisorSettings, env.WEBUI_PORT, "70000", "less than or equal to 65535"),
    (st.SupervisorSettings, env.FRAMEWORK, "invokeai", "'automatic1111', 'sdnext' or 'comfyui'"),
    (st.SupervisorSettings, "SDFLEET_HANG_SECONDS", "0", "greater than or equal to 0.1"),
    (st.SupervisorSettings, "SDFLEET_AGONES", "maybe", "'auto', 'true' or 'false'"),
    (st.SupervisorSettings, "SDFLEET_INSECURE_EXTENSION_ACCESS", "perhaps", "true/false"),
    (st.FrontSettings, env.FRONT_UPSTREAM, "http://10.0.0.5:7870", "loopback"),
    (st.SyncSettings, "SDFLEET_SYNC_INTERVAL_SECONDS", "-1", "greater than or equal to 0.05"),
    (st.ProbeSettings, env.SUPERVISOR_PORT, "0", "greater than or equal to 1"),
    (st.FetcherSettings, "SDFLEET_FETCH_PARALLEL", "17", "less than or equal to 16"),
])
def test_a_bad_value_names_the_variable_the_value_and_what_is_allowed(cls, variable, value, allowed):
    with pytest.raises(st.SettingError) as error:
        cls.from_env({variable: value})
    assert f"{variable}={value!r}" in str(error.value) and allowed in str(error.value)


def test_empty_means_unset_and_names_are_case_sensitive():
    s = st.SupervisorSettings.from_env({env.WEBUI_PORT: "", "sdfleet_hang_seconds": "x"})
    assert s.webui_port == 7860 and s.hang_timeout == 120.0


def test_agones_port_only_when_agones_set_it_or_asked():
    assert SupervisorConfig.from_env({}).agones_port is None
    assert SupervisorConfig.from_env({"AGONES_SDK_HTTP_PORT": "9400"}).agones_port == 9400
    assert SupervisorConfig.from_env({"SDFLEET_AGONES": "true"}).agones_port == 9358
    assert SupervisorConfig.from_env({"AGONES_SDK_HTTP_PORT": "9400",
                                      "SDFLEET_AGONES": "false"}).agones_port is None


def test_tokens_come_from_the_variable_or_the_mounted_file_and_never_show(tmp_path):
    token_file = tmp_path / "hf"
    token_file.write_text("from-file\n")
    s = FetchSettings.from_env(tmp_path, {"HF_TOKEN_FILE": str(token_file), "CIVITAI_TOKEN": "c1"})
    assert s.endpoints.hf_token == "from-file" and s.endpoints.civitai_token == "c1"
    raw = st.FetcherSettings.from_env({"HF_TOKEN": "secret-1", "CIVITAI_TOKEN": "secret-2"})
    assert "secret" not in repr(raw)


def test_no_program_reads_the_environment_past_the_settings_module():
    """Every env name a program of the image reads is a field of settings.py (or the model
    list's own variables in modellist.py): no hand-written reader is left elsewhere."""
    offenders = []
    for source in PACKAGE.glob("*.py"):
        if source.name in ("settings.py", "env.py", "modellist.py"):
            continue
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and \
                    isinstance(node.value, ast.Name) and node.value.id == "os":
                offenders.append(f"{source.name}:{node.lineno}")
    # The two that copy the whole environment into a child process (git, the WebUI).
    passing_on = {"supervisor.py", "download.py"}
    assert not [o for o in offenders if o.split(":")[0] not in passing_on], offenders
