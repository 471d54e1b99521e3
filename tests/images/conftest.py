"""Fixtures for the WebUI image's programs (images/webui/sdfleet_webui).

The package lives in the image's folder, not at the repository root, so it is put on the
import path here, and child processes get the same path through ``webui_env``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEBUI_SRC = ROOT / "images" / "webui"
if str(WEBUI_SRC) not in sys.path:
    sys.path.insert(0, str(WEBUI_SRC))


def child_env(**extra: str) -> dict:
    """Environment for a program of the image run as a child process."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SDFLEET_", "CIVITAI_", "HF_", "AGONES_"))
           and k not in ("CKPT_URLS", "VAE_URLS", "LORA_URLS", "CONTROLNET_URLS", "EXTENSION_URLS",
                         "LOAD_SDXL_BASE", "LOAD_REFINER")}
    env["PYTHONPATH"] = os.pathsep.join([str(WEBUI_SRC), str(ROOT)])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture
def webui_env():
    return child_env


def _ours(proc) -> bool:
    """Started by this test run: a descendant of this process, or a program run with this
    checkout's PYTHONPATH (orphaned grandchildren are reparented away from us). Other
    checkouts on the same machine run the same programs; they are never ours to judge."""
    try:
        if WEBUI_SRC.as_posix() in proc.environ().get("PYTHONPATH", ""):
            return True
    except Exception:
        pass
    return False


def _leftover_processes() -> list:
    import psutil
    found = []
    me = psutil.Process()
    descendants = {p.pid for p in me.children(recursive=True)}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if "tests/images/stub_webui.py" in cmdline or "sdfleet_webui.supervisor" in cmdline \
                or "sdfleet_webui.usersync" in cmdline or "sdfleet_webui.trusted" in cmdline:
            if proc.pid in descendants or _ours(proc):
                found.append(proc)
    return found


def _leftovers() -> list[str]:
    return [f"{p.info['pid']}: {' '.join(p.info.get('cmdline') or [])[:120]}"
            for p in _leftover_processes()]


@pytest.fixture(autouse=True)
def no_leaked_processes():
    """Every test stops what it started: no supervisor, sidecar or stub WebUI survives it."""
    import time
    yield
    deadline = time.monotonic() + 3
    while _leftovers() and time.monotonic() < deadline:
        time.sleep(0.1)
    leaked = _leftovers()
    for proc in _leftover_processes():  # so one leak fails one test, not every later one
        try:
            proc.kill()
        except Exception:
            pass
    assert not leaked, f"processes leaked by this test: {leaked}"
