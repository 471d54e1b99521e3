"""The decision rules and small building blocks, on their own."""

from __future__ import annotations

import functools
import os
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import pytest
from sdfleet_webui import frameworks as fw
from sdfleet_webui.fetch import Fetcher, FetchSettings
from sdfleet_webui.modellist import ModelListError, load_model_list, parse_model_list
from sdfleet_webui.policy import (
    Observation,
    RestartPolicy,
    backoff_delay,
    last_error_line,
    restart_reason,
    serving_state,
    should_announce_loading,
    should_give_up,
    should_mark_ready,
    should_ping_health,
)
from sdfleet_webui.syncrules import binding_decision
from sdfleet_webui.usersync import open_beneath

POLICY = RestartPolicy(start_timeout=60, hang_timeout=30, backoff_base=2, backoff_max=20,
                       max_restarts=3, restart_window=100)


def test_restart_rule():
    assert restart_reason(Observation(10, 137, False, 0, 5), POLICY) == "exited with code 137"
    assert restart_reason(Observation(59, None, False, 0, None), POLICY) is None  # still loading
    assert "after start" in restart_reason(Observation(61, None, False, 0, None), POLICY)
    assert restart_reason(Observation(100, None, False, 0, 80), POLICY) is None  # brief stall
    assert "stopped answering" in restart_reason(Observation(100, None, False, 0, 60), POLICY)
    assert [backoff_delay(n, POLICY) for n in range(6)] == [0, 2, 4, 8, 16, 20]
    assert not should_give_up([1, 2, 3], 50, POLICY)
    assert should_give_up([1, 2, 3, 4], 50, POLICY)
    assert not should_give_up([1, 2, 3, 4], 150, POLICY)  # old restarts age out


def test_agones_rules():
    assert should_mark_ready(True, False, "Scheduled")
    assert not should_mark_ready(False, False, "Scheduled")
    assert not should_mark_ready(True, True, "Scheduled")
    assert not should_mark_ready(True, False, "Allocated")  # would release the person's pod
    assert should_ping_health(100, True, None, 0, False, 5)
    assert should_ping_health(100, False, 96, 0, False, 5)
    assert not should_ping_health(100, False, 90, 0, False, 5)
    assert not should_ping_health(100, True, 100, 0, True, 5)
    assert should_announce_loading(True, False, False, False)
    assert not should_announce_loading(False, False, False, False)  # no WebUI process yet
    assert not should_announce_loading(True, True, False, False)    # already serving
    assert not should_announce_loading(True, False, True, False)    # a restart after Ready
    assert not should_announce_loading(True, False, False, True)    # said once


def test_ready_is_a_made_image_not_an_answering_api():
    assert serving_state(True, False, "starting") == "loading-model"
    assert serving_state(True, True, "loading-model") == "ready"
    assert serving_state(False, False, "starting") == "starting"
    assert serving_state(False, True, "ready") == "unresponsive"
    assert serving_state(False, False, "loading-model") == "loading-model"
    log = ["Loading weights [6ce0161689] from /models/Stable-diffusion/v1-5.safetensors",
           "Stable diffusion model failed to load", "Traceback (most recent call last):",
           "  File \"launch.py\", line 48", "OSError: Can't load tokenizer for 'openai/clip'",
           "Running on local URL:  http://127.0.0.1:7860"]
    assert last_error_line(log) == "OSError: Can't load tokenizer for 'openai/clip'"
    assert last_error_line(["Running on local URL"]) is None


def gs(state, identity=None):
    labels = {"sdfleet.dev/identity": identity} if identity else {}
    return {"object_meta": {"labels": labels}, "status": {"state": state}}


def test_binding_rule():
    assert binding_decision(None, gs("Ready")).action == "wait"
    assert binding_decision(None, gs("Allocated", "b-c5p6c")).identity == "b-c5p6c"
    assert binding_decision(None, gs("Allocated", "a/../b")).action == "refuse"
    assert binding_decision("g-1", gs("Allocated", "g-1")).action == "sync"
    assert binding_decision("g-1", gs("Allocated", "g-2")).action == "conflict"
    assert binding_decision("g-1", gs("Shutdown", "g-1")).action == "final"


def test_open_beneath_refuses_a_symlink_anywhere_on_the_path(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_text("x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    fd = open_beneath(tmp_path, PurePosixPath("real/f"))
    assert os.read(fd, 10) == b"x"
    os.close(fd)
    with pytest.raises(OSError):
        open_beneath(tmp_path, PurePosixPath("link/f"))


def test_framework_commands_listen_on_loopback_with_api_on_and_no_insecure_extensions(tmp_path):
    s = fw.LaunchSettings(frameworks_root=tmp_path, models_root=Path("/models"),
                          scratch=tmp_path / "scratch", default_checkpoint="Stable-diffusion/x.safetensors")
    a1111, _ = fw.launch_command("automatic1111", s)
    assert "--api" in a1111 and "--enable-insecure-extension-access" not in a1111
    assert "--listen" not in a1111 and a1111[a1111.index("--server-name") + 1] == "127.0.0.1"
    assert a1111[a1111.index("--ckpt") + 1] == "/models/Stable-diffusion/x.safetensors"
    assert a1111[a1111.index("--port") + 1] == "7860"
    # the image has no xformers: A1111 is told to use PyTorch's SDP attention
    assert "--opt-sdp-attention" in a1111 and "--xformers" not in a1111
    sdnext, _ = fw.launch_command("sdnext", s)
    assert sdnext[sdnext.index("--models-dir") + 1] == "/models" and "--insecure" not in sdnext
    comfy, _ = fw.launch_command("comfyui", s)
    assert comfy[comfy.index("--listen") + 1] == "127.0.0.1"
    fw.prepare("comfyui", s)
    assert "base_path: /models" in (s.scratch / "run" / "extra_model_paths.yaml").read_text()
    insecure = fw.LaunchSettings(frameworks_root=tmp_path, insecure_extension_access=True)
    assert "--enable-insecure-extension-access" in fw.launch_command("automatic1111", insecure)[0]


def test_legacy_variables_map_to_the_model_list():
    listed = load_model_list(env={"CIVITAI_MODEL_VERSION_IDS": "128713, 166808", "LOAD_SDXL_BASE": "1",
                                  "VAE_URLS": "https://h.example/a/vae.safetensors?download=true",
                                  "SDFLEET_DEFAULT_CHECKPOINT": "sdxl-base"})
    assert [m.name for m in listed.models] == ["civitai-128713", "civitai-166808", "vae-vae", "sdxl-base"]
    assert listed.default_checkpoint == "sdxl-base"
    with pytest.raises(ModelListError, match="CIVITAI_MODEL_VERSION_IDS: 'abc'"):
        load_model_list(env={"CIVITAI_MODEL_VERSION_IDS": "abc"})
    with pytest.raises(ModelListError, match="EXTENSION_URLS: .* is not pinned"):
        load_model_list(env={"EXTENSION_URLS": "https://github.com/x/y"})
    with pytest.raises(ModelListError, match="defaultCheckpoint 'nope' names no model"):
        parse_model_list({"defaultCheckpoint": "nope", "models": []})


def git(*args, cwd=None):
    return subprocess.run(["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_extensions_are_cloned_at_their_pinned_commit_over_http(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", cwd=work)
    (work / "scripts.py").write_text("v1")
    git("add", ".", cwd=work)
    git("commit", "-qm", "v1", cwd=work)
    pinned = git("rev-parse", "HEAD", cwd=work)
    (work / "scripts.py").write_text("v2")
    git("commit", "-qam", "v2", cwd=work)
    served = tmp_path / "served"
    served.mkdir()
    git("clone", "-q", "--bare", str(work), str(served / "sd-ext.git"))
    git("update-server-info", cwd=served / "sd-ext.git")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}), directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/sd-ext.git"
        listed = parse_model_list({"models": [{"name": "ext", "kind": "extension", "source": "url",
                                               "url": url, "revision": pinned}]})
        root = tmp_path / "models"
        report = Fetcher(FetchSettings(root=root)).run(listed)
        assert report.ok, report.problems
        assert (root / "extensions" / "sd-ext" / "scripts.py").read_text() == "v1"
        server.shutdown()
        again = Fetcher(FetchSettings(root=root, offline=True)).run(listed)
        assert again.ok and again.outcomes[0].status == "verified"
    finally:
        server.server_close()
    with pytest.raises(ModelListError, match="pinned to a full 40-hex commit"):
        parse_model_list({"models": [{"name": "ext", "kind": "extension", "source": "url", "url": url}]})
