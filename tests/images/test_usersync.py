"""The user-sync sidecar as a real process, watching a stub Agones SDK sidecar."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.images.agones_sdk_stub import AgonesSdkStub
from tests.images.conftest import child_env

OLD = time.time() - 30 * 86400


def tree(root: Path) -> dict[str, bytes]:
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(root))] = b"-> " + os.readlink(path).encode()
        elif path.is_file():
            out[str(path.relative_to(root))] = path.read_bytes()
    return out


def put(path: Path, data: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def world(tmp_path):
    users, scratch = tmp_path / "users", tmp_path / "scratch"
    put(users / "g-111" / "automatic1111" / "config.json", b'{"sd_model_checkpoint": "mine"}')
    put(users / "g-111" / "automatic1111" / "outputs" / "txt2img" / "recent.png", b"A-recent")
    put(users / "g-111" / "automatic1111" / "outputs" / "txt2img" / "old.png", b"A-old", OLD)
    put(users / "g-222" / "automatic1111" / "config.json", b"B-SECRET-SETTINGS")
    put(users / "g-222" / "automatic1111" / "outputs" / "b.png", b"B-SECRET-IMAGE")
    scratch.mkdir()
    sdk = AgonesSdkStub()
    sdk._set_state("Ready")
    yield users, scratch, sdk
    sdk.close()


class Sidecar:
    def __init__(self, users: Path, scratch: Path, sdk: AgonesSdkStub, interval: str = "0.2"):
        env = child_env(SDFLEET_USERS_ROOT=str(users), SDFLEET_SCRATCH=str(scratch),
                        AGONES_SDK_HTTP_PORT=str(sdk.port), SDFLEET_SYNC_INTERVAL_SECONDS=interval,
                        SDFLEET_RECENT_OUTPUT_DAYS="7")
        self.log_path = scratch.parent / "usersync.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "sdfleet_webui.usersync"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path, "wb"),
                                     start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_log(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged:\n{self.log()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        return self.proc.wait(timeout=15)


def test_allocation_brings_exactly_that_persons_files_and_syncs_back_only_to_them(world):
    users, scratch, sdk = world
    b_before = tree(users / "g-222")
    sidecar = Sidecar(users, scratch, sdk)
    try:
        time.sleep(0.5)
        assert not (scratch / "home").exists()  # nothing before allocation
        sdk.allocate({"sdfleet.dev/identity": "g-111"}, {"sdfleet.dev/email": "a@example.com"})
        sidecar.wait_log('"event": "sync-pulled"')
        home = scratch / "home"
        assert tree(home) == {"automatic1111/config.json": b'{"sd_model_checkpoint": "mine"}',
                              "automatic1111/outputs/txt2img/recent.png": b"A-recent"}

        # the WebUI (untrusted) writes an output and plants links to the other person's folder
        put(home / "automatic1111" / "outputs" / "new.png", b"A-new")
        os.symlink(users / "g-222" / "automatic1111" / "outputs" / "b.png",
                   home / "automatic1111" / "outputs" / "steal.png")
        os.symlink(users / "g-222", home / "automatic1111" / "outputs" / "other")
        os.symlink(users / "g-222" / "automatic1111", home / "sdnext")
        deadline = time.monotonic() + 10
        while not (users / "g-111" / "automatic1111" / "outputs" / "new.png").exists():
            assert time.monotonic() < deadline, sidecar.log()
            time.sleep(0.05)
        time.sleep(0.5)
        a_files = tree(users / "g-111")
        assert a_files["automatic1111/outputs/new.png"] == b"A-new"
        assert not any(b"B-SECRET" in data for data in a_files.values())
        assert "automatic1111/outputs/txt2img/old.png" in a_files  # never deleted
        assert tree(users / "g-222") == b_before
    finally:
        assert sidecar.stop() == 0


def test_new_outputs_are_synced_on_sigterm_and_a_changed_label_stops_all_syncing(world):
    users, scratch, sdk = world
    sidecar = Sidecar(users, scratch, sdk, interval="3600")  # only events and shutdown sync
    try:
        sdk.allocate({"sdfleet.dev/identity": "g-111"})
        sidecar.wait_log('"event": "sync-pulled"')
        put(scratch / "home" / "automatic1111" / "outputs" / "last.png", b"A-last")
    finally:
        assert sidecar.stop() == 0
    assert (users / "g-111" / "automatic1111" / "outputs" / "last.png").read_bytes() == b"A-last"

    b_before = tree(users / "g-222")
    again = Sidecar(users, scratch, sdk, interval="0.2")
    try:
        again.wait_log('"event": "sync-pulled"')
        with sdk.cond:  # the label changes under a running pod: a conflict, never a re-bind
            sdk.gs["object_meta"]["labels"]["sdfleet.dev/identity"] = "g-222"
            sdk._changed()
        again.wait_log('"event": "sync-halted"')
        put(scratch / "home" / "automatic1111" / "outputs" / "after.png", b"A-after")
        time.sleep(0.8)
    finally:
        assert again.stop() == 0
    assert tree(users / "g-222") == b_before
    assert not (users / "g-111" / "automatic1111" / "outputs" / "after.png").exists()


@pytest.mark.parametrize("label", ["../g-222", "G-111", "g-111/../g-222", "-g", "x" * 64])
def test_an_invalid_identity_label_is_refused_and_nothing_is_copied(world, label):
    users, scratch, sdk = world
    sidecar = Sidecar(users, scratch, sdk)
    try:
        sdk.allocate({"sdfleet.dev/identity": label})
        sidecar.wait_log('"event": "sync-halted"')
        assert "is not a valid id" in sidecar.log()
        assert not (scratch / "home").exists() or tree(scratch / "home") == {}
    finally:
        assert sidecar.stop() == 0
    assert sorted(p.name for p in users.iterdir()) == ["g-111", "g-222"]


def test_shutdown_state_triggers_a_final_sync(world):
    users, scratch, sdk = world
    sidecar = Sidecar(users, scratch, sdk, interval="3600")
    try:
        sdk.allocate({"sdfleet.dev/identity": "g-111"})
        sidecar.wait_log('"event": "sync-pulled"')
        put(scratch / "home" / "comfyui" / "outputs" / "c.png", b"A-comfy")
        sdk._set_state("Shutdown")
        sidecar.wait_log('"final": true')
        assert (users / "g-111" / "comfyui" / "outputs" / "c.png").read_bytes() == b"A-comfy"
    finally:
        assert sidecar.stop() == 0
