"""Each framework's command line (frameworks.launch_command) is started against a stub
interpreter that records its arguments, and the recorded arguments are parsed with each
framework's own flags at the version the Dockerfile pins. An invented, misspelt or
value-less flag fails here instead of in a pod that restarts forever.

Flag tables: copied (names and whether they take a value) from the upstream parsers,
one entry per ``add_argument`` call. "flag" = store_true/store_false, "value" = one
value, "optional" = nargs='?', "many" = nargs='+'/'*' or action='append'.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sdfleet_webui import frameworks as fw

# AUTOMATIC1111 v1.10.1 (82a973c0): modules/cmd_args.py (read at AUTOMATIC1111/
# stable-diffusion-webui modules/cmd_args.py; --skip-prepare-environment,
# "launch.py argument: skip all environment preparation", since v1.3.0), plus the
# flags that the extensions' preload.py files add before parsing:
# extensions-builtin/Lora/preload.py (--lora-dir, --lyco-dir-backcompat) and the baked
# Mikubill/sd-webui-controlnet 56cec5b2 preload.py (--controlnet-*).
A1111_FLAGS = {
    "--update-all-extensions": "flag", "--skip-python-version-check": "flag",
    "--skip-torch-cuda-test": "flag", "--reinstall-xformers": "flag", "--reinstall-torch": "flag",
    "--update-check": "flag", "--tests": "value", "--no-tests": "flag", "--skip-install": "flag",
    "--skip-prepare-environment": "flag",
    "--data-dir": "value", "--config": "value", "--ckpt": "value", "--ckpt-dir": "value",
    "--vae-dir": "value", "--gfpgan-dir": "value", "--gfpgan-model": "value", "--no-half": "flag",
    "--no-half-vae": "flag", "--no-progressbar-hiding": "flag", "--max-batch-count": "value",
    "--embeddings-dir": "value", "--textual-inversion-templates-dir": "value",
    "--hypernetwork-dir": "value", "--localizations-dir": "value", "--allow-code": "flag",
    "--medvram": "flag", "--lowvram": "flag", "--lowram": "flag",
    "--always-batch-cond-uncond": "flag", "--precision": "value", "--upcast-sampling": "flag",
    "--share": "flag", "--ngrok": "value", "--ngrok-region": "value",
    "--enable-insecure-extension-access": "flag", "--codeformer-models-path": "value",
    "--gfpgan-models-path": "value", "--esrgan-models-path": "value",
    "--bsrgan-models-path": "value", "--realesrgan-models-path": "value",
    "--clip-models-path": "value", "--xformers": "flag", "--force-enable-xformers": "flag",
    "--xformers-flash-attention": "flag", "--opt-split-attention": "flag",
    "--opt-sub-quad-attention": "flag", "--opt-sdp-attention": "flag",
    "--opt-sdp-no-mem-attention": "flag", "--disable-opt-split-attention": "flag",
    "--disable-nan-check": "flag", "--use-cpu": "many", "--listen": "flag", "--port": "value",
    "--ui-config-file": "value", "--hide-ui-dir-config": "flag", "--freeze-settings": "flag",
    "--ui-settings-file": "value", "--gradio-debug": "flag", "--gradio-auth": "value",
    "--gradio-auth-path": "value", "--opt-channelslast": "flag", "--styles-file": "value",
    "--autolaunch": "flag", "--theme": "value", "--use-textbox-seed": "flag",
    "--disable-console-progressbars": "flag", "--enable-console-prompts": "flag",
    "--vae-path": "value", "--disable-safe-unpickle": "flag", "--api": "flag",
    "--api-auth": "value", "--api-log": "flag", "--nowebui": "flag", "--ui-debug-mode": "flag",
    "--device-id": "value", "--administrator": "flag", "--cors-allow-origins": "value",
    "--cors-allow-origins-regex": "value", "--tls-keyfile": "value", "--tls-certfile": "value",
    "--server-name": "value", "--no-gradio-queue": "flag", "--skip-version-check": "flag",
    "--no-hashing": "flag", "--no-download-sd-model": "flag", "--subpath": "value",
    "--add-stop-route": "flag",
    # extensions-builtin/Lora/preload.py
    "--lora-dir": "value", "--lyco-dir-backcompat": "value",
    # sd-webui-controlnet preload.py
    "--controlnet-dir": "value", "--controlnet-annotator-models-path": "value",
    "--no-half-controlnet": "flag", "--controlnet-preprocessor-cache-size": "value",
    "--controlnet-loglevel": "value", "--controlnet-tracemalloc": "flag",
}

# SD.Next release 2026-07-14 (e08063a9): modules/cmd_args.py and installer.py add_args, every
# add_argument of both (vladmandic/sdnext, read from the tagged tree).
SDNEXT_FLAGS = {
    "--allow-code": "flag", "--allowed-paths": "many", "--api": "flag", "--api-auth": "value",
    "--api-log": "flag", "--api-only": "value", "--auth": "value", "--auth-file": "value",
    "--autolaunch": "flag", "--backend": "value", "--ckpt": "value", "--config": "value",
    "--cors-origins": "value", "--cors-regex": "value", "--data-dir": "value", "--debug": "flag",
    "--device-id": "value", "--disable": "value", "--disable-console-progressbars": "flag",
    "--disable-extension-access": "flag", "--disable-queue": "flag",
    "--disable-safe-unpickle": "flag", "--docs": "flag", "--embeddings-dir": "value",
    "--enable_insecure_extension_access": "flag", "--enso": "flag", "--experimental": "flag",
    "--extensions-dir": "value", "--freeze": "flag", "--hide-ui-dir-config": "flag",
    "--hypernetwork-dir": "value", "--ignore": "flag", "--insecure": "flag", "--listen": "flag",
    "--locale": "value", "--log": "value", "--lora-dir": "value", "--lowram": "flag",
    "--lowvram": "flag", "--medvram": "flag", "--models-dir": "value", "--monitor": "value",
    "--new": "flag", "--no-half": "flag", "--no-half-vae": "flag", "--no-hashing": "flag",
    "--no-metadata": "flag", "--optional": "flag", "--port": "value", "--precision": "value",
    "--profile": "flag", "--quick": "flag", "--reinstall": "flag", "--requirements": "flag",
    "--reset": "flag", "--safe": "flag", "--secrets": "value", "--server-name": "value",
    "--share": "flag", "--skip-all": "flag", "--skip-env": "flag", "--skip-extensions": "flag",
    "--skip-git": "flag", "--skip-requirements": "flag", "--skip-torch": "flag",
    "--status": "value", "--subpath": "value", "--test": "flag", "--theme": "value",
    "--tls-certfile": "value", "--tls-keyfile": "value", "--tls-selfsign": "flag",
    "--trace": "flag", "--ui-config": "value", "--ui-config-file": "value",
    "--ui-settings-file": "value", "--upcast-sampling": "flag", "--update": "flag",
    "--upgrade": "flag", "--use-cpu": "many", "--use-cuda": "flag", "--use-directml": "flag",
    "--use-ipex": "flag", "--use-nightly": "flag", "--use-openvino": "flag", "--use-rocm": "flag",
    "--use-xformers": "flag", "--use-zluda": "flag", "--uv": "flag", "--vae": "value",
    "--vae-dir": "value", "--version": "flag",
}

# ComfyUI v0.3.64: comfy/cli_args.py (docs/pinned-refs.md says how far this was confirmed).
COMFYUI_FLAGS = {
    "--listen": "optional", "--port": "value", "--tls-keyfile": "value", "--tls-certfile": "value",
    "--enable-cors-header": "optional", "--max-upload-size": "value", "--base-directory": "value",
    "--extra-model-paths-config": "many", "--output-directory": "value",
    "--temp-directory": "value", "--input-directory": "value",
    "--auto-launch": "flag", "--disable-auto-launch": "flag", "--cuda-device": "value",
    "--cuda-malloc": "flag", "--disable-cuda-malloc": "flag", "--force-fp32": "flag",
    "--force-fp16": "flag", "--fp32-unet": "flag", "--fp64-unet": "flag", "--bf16-unet": "flag",
    "--fp16-unet": "flag", "--fp16-vae": "flag", "--fp32-vae": "flag", "--bf16-vae": "flag",
    "--cpu-vae": "flag", "--force-channels-last": "flag", "--preview-method": "value",
    "--preview-size": "value", "--cache-classic": "flag", "--cache-lru": "value",
    "--cache-none": "flag", "--use-split-cross-attention": "flag",
    "--use-quad-cross-attention": "flag", "--use-pytorch-cross-attention": "flag",
    "--use-sage-attention": "flag", "--use-flash-attention": "flag", "--disable-xformers": "flag",
    "--force-upcast-attention": "flag", "--dont-upcast-attention": "flag", "--gpu-only": "flag",
    "--highvram": "flag", "--normalvram": "flag", "--lowvram": "flag", "--novram": "flag",
    "--cpu": "flag", "--reserve-vram": "value", "--async-offload": "flag",
    "--default-hashing-function": "value", "--disable-smart-memory": "flag",
    "--deterministic": "flag", "--fast": "many", "--mmap-torch-files": "flag",
    "--disable-mmap": "flag", "--dont-print-server": "flag", "--quick-test-for-ci": "flag",
    "--windows-standalone-build": "flag", "--disable-metadata": "flag",
    "--disable-all-custom-nodes": "flag", "--whitelist-custom-nodes": "many",
    "--disable-api-nodes": "flag", "--multi-user": "flag", "--verbose": "optional",
    "--log-stdout": "flag", "--front-end-version": "value", "--front-end-root": "value",
    "--user-directory": "value", "--enable-compress-response-body": "flag",
    "--comfy-api-base": "value", "--database-url": "value",
}

UPSTREAM = {
    # framework: (entry script, flags)
    "automatic1111": ("launch.py", A1111_FLAGS),
    "sdnext": ("launch.py", SDNEXT_FLAGS),
    "comfyui": ("main.py", COMFYUI_FLAGS),
}


def upstream_parser(flags: dict[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(allow_abbrev=False, exit_on_error=False, add_help=False)
    for name, kind in flags.items():
        if kind == "flag":
            parser.add_argument(name, action="store_true")
        elif kind == "optional":
            parser.add_argument(name, nargs="?")
        elif kind == "many":
            parser.add_argument(name, nargs="+", action="append")
        else:
            parser.add_argument(name)
    return parser


def stub_framework_root(tmp_path: Path, record: Path) -> Path:
    """<root>/<framework>/venv/bin/python for every framework: records argv and cwd."""
    root = tmp_path / "frameworks"
    for framework in fw.FRAMEWORKS:
        python = root / framework / "venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                          f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}, "
                          f"open({str(record)!r}, 'w'))\n")
        python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return root


def started(framework: str, settings: fw.LaunchSettings, record: Path) -> dict:
    fw.prepare(framework, settings)
    argv, cwd = fw.launch_command(framework, settings)
    subprocess.run(argv, cwd=cwd, check=True, timeout=30, env={"PATH": os.environ["PATH"]})
    return json.loads(record.read_text())


@pytest.mark.parametrize("framework", fw.FRAMEWORKS)
@pytest.mark.parametrize("variant", ["default", "insecure-extensions-and-checkpoint"])
def test_the_command_line_parses_with_the_frameworks_own_flags(tmp_path, framework, variant):
    record = tmp_path / "argv.json"
    settings = fw.LaunchSettings(frameworks_root=stub_framework_root(tmp_path, record),
                                 models_root=tmp_path / "models", scratch=tmp_path / "scratch",
                                 port=7870,
                                 insecure_extension_access=variant != "default",
                                 default_checkpoint="Stable-diffusion/base.safetensors"
                                 if variant != "default" else None)
    seen = started(framework, settings, record)
    script, flags = UPSTREAM[framework]
    assert seen["argv"][0] == script
    assert seen["cwd"] == str(settings.frameworks_root / framework)
    try:
        parsed, unknown = upstream_parser(flags).parse_known_args(seen["argv"][1:])
    except argparse.ArgumentError as exc:
        pytest.fail(f"{framework}: {exc}")
    assert unknown == [], f"{framework}: flags its parser does not have: {unknown}"
    assert parsed.port == "7870"


@pytest.mark.parametrize("framework", fw.FRAMEWORKS)
def test_the_framework_listens_on_loopback_only(tmp_path, framework):
    """The front owns the pod port; a framework bound to 0.0.0.0 would be reachable beside
    it (A1111/SD.Next --listen = 0.0.0.0; ComfyUI --listen without a value = 0.0.0.0,::)."""
    record = tmp_path / "argv.json"
    settings = fw.LaunchSettings(frameworks_root=stub_framework_root(tmp_path, record),
                                 models_root=tmp_path / "models", scratch=tmp_path / "scratch")
    argv = started(framework, settings, record)["argv"]
    parsed, _ = upstream_parser(UPSTREAM[framework][1]).parse_known_args(argv[1:])
    if framework == "comfyui":
        assert parsed.listen == "127.0.0.1"
    else:
        assert parsed.listen is False and parsed.server_name == "127.0.0.1"


def test_a1111_sees_the_controlnets_and_the_baked_extensions(tmp_path):
    record = tmp_path / "argv.json"
    settings = fw.LaunchSettings(frameworks_root=stub_framework_root(tmp_path, record),
                                 models_root=tmp_path / "models", scratch=tmp_path / "scratch")
    argv = started("automatic1111", settings, record)["argv"]
    parsed, _ = upstream_parser(A1111_FLAGS).parse_known_args(argv[1:])
    assert parsed.controlnet_dir == str(tmp_path / "models" / "ControlNet")
    # A1111 loads extensions from <data-dir>/extensions: the image's installed ones
    link = Path(parsed.data_dir) / "extensions"
    assert link.is_symlink() and os.readlink(link) == str(settings.frameworks_root / "automatic1111" / "extensions")


def test_sdnext_loads_the_images_installed_extensions(tmp_path):
    record = tmp_path / "argv.json"
    settings = fw.LaunchSettings(frameworks_root=stub_framework_root(tmp_path, record),
                                 models_root=tmp_path / "models", scratch=tmp_path / "scratch")
    argv = started("sdnext", settings, record)["argv"]
    parsed, _ = upstream_parser(SDNEXT_FLAGS).parse_known_args(argv[1:])
    assert parsed.extensions_dir == str(settings.frameworks_root / "sdnext" / "extensions")


def test_comfyui_database_is_a_file_in_a_folder_that_exists_in_scratch(tmp_path):
    """ComfyUI logs "unable to open database file" on every start when its database folder
    does not exist; it is put in scratch, in a folder prepare() makes, and SQLite can open it."""
    import sqlite3
    s = fw.LaunchSettings(frameworks_root=tmp_path / "frameworks", scratch=tmp_path / "scratch",
                          models_root=tmp_path / "models")
    fw.prepare("comfyui", s)
    argv, _ = fw.launch_command("comfyui", s)
    url = argv[argv.index("--database-url") + 1]
    assert url.startswith("sqlite:////") and str(tmp_path / "scratch") in url
    path = Path(url[len("sqlite:///"):])
    assert path.parent.is_dir()
    sqlite3.connect(path).execute("create table t (x)").connection.close()
    assert path.is_file()


def test_no_framework_hashes_its_checkpoints_at_start(tmp_path):
    """Every new pod would read each checkpoint whole from the share to hash it: A1111 runs
    with --no-hashing (in its own parser's table above), SD.Next with SD_NOHASHING (its
    Dockerfile stage), ComfyUI hashes nothing at load. The model sync verified each file."""
    settings = fw.LaunchSettings(frameworks_root=tmp_path, scratch=tmp_path)
    argv, _ = fw.launch_command("automatic1111", settings)
    assert "--no-hashing" in argv and A1111_FLAGS["--no-hashing"] == "flag"
    dockerfile = (Path(__file__).resolve().parents[2] / "images" / "webui" / "Dockerfile").read_text()
    sdnext = dockerfile.split("AS sdnext", 1)[1].split("FROM base AS comfyui", 1)[0]
    assert "SD_NOHASHING=true" in sdnext
