"""The trusted user-sync sidecar: brings the allocated person's files in, and new ones back.

    python -m sdfleet_webui.usersync

It mounts the people's shared folder (``/users``, read-write) and the pod's scratch space
(``/scratch``); the WebUI container never sees ``/users``. It watches the game server
through the Agones SDK REST API (``GET /watch/gameserver``). On allocation it reads the
label ``sdfleet.dev/identity``, validates it (``syncrules.valid_identity``) and copies
``/users/<id>/`` (settings, plus outputs from the last ``SDFLEET_RECENT_OUTPUT_DAYS``)
into ``/scratch/home/``. Every ``SDFLEET_SYNC_INTERVAL_SECONDS``, when the game server
shuts down, and on SIGTERM it copies new or changed files from ``/scratch/home/`` back to
``/users/<id>/``. It never deletes anything in ``/users`` and never writes through a
symbolic link on either side (``safe_copy``).
"""

from __future__ import annotations

import os
import stat as statmod
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from . import settings as st
from .agones import AgonesSdk, AgonesUnavailable
from .logs import log
from .signals import on_termination
from .syncrules import binding_decision, should_pull, should_push, valid_identity


class UnsafePath(Exception):
    pass


@dataclass
class SyncConfig:
    users_root: Path
    scratch_home: Path
    agones_port: int
    interval: float = 60.0
    recent_seconds: float = 7 * 86400
    max_file_bytes: int = 512 * 1024 * 1024

    @classmethod
    def from_env(cls, env: dict | None = None) -> "SyncConfig":
        """From the environment (names, defaults and limits: settings.SyncSettings)."""
        s = st.SyncSettings.from_env(env)
        return cls(users_root=s.users_root, scratch_home=s.scratch / "home",
                   agones_port=s.agones_port, interval=s.interval,
                   recent_seconds=s.recent_output_days * 86400, max_file_bytes=s.max_file_bytes)


def person_folder(users_root: Path, identity: str) -> Path:
    """``users_root/<id>``, only for a valid id, never through a symlink."""
    if valid_identity(identity) is None:
        raise UnsafePath(f"identity {identity!r} is not a valid id")
    folder = users_root / identity
    if folder.is_symlink():
        raise UnsafePath(f"{folder} is a symbolic link")
    if os.path.dirname(os.path.realpath(folder)) != os.path.realpath(users_root):
        raise UnsafePath(f"{folder} is outside {users_root}")
    return folder


def _ensure_dirs(root: Path, rel_parent: PurePosixPath) -> Path:
    """Create ``root/rel_parent`` one component at a time, refusing symlinked components."""
    current = root
    for part in rel_parent.parts:
        current = current / part
        try:
            st_ = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current, 0o755)
            continue
        if not statmod.S_ISDIR(st_.st_mode):
            raise UnsafePath(f"{current} is not a real folder")
    return current


def open_beneath(root: Path, rel: PurePosixPath) -> int:
    """Open ``root/rel`` for reading, refusing a symlink at *any* component.

    Walking with O_NOFOLLOW one folder at a time closes the race where the WebUI swaps a
    folder for a link (to another person's folder, as the sidecar sees it) between the
    directory walk and the open.
    """
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in rel.parent.parts:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(rel.name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    finally:
        os.close(fd)


def safe_copy(src_root: Path, rel: PurePosixPath, dest_root: Path) -> None:
    """Copy one regular file without following links, atomically, keeping its mtime."""
    parent = _ensure_dirs(dest_root, rel.parent)
    fd = open_beneath(src_root, rel)
    try:
        src_stat = os.fstat(fd)
        if not statmod.S_ISREG(src_stat.st_mode):
            raise UnsafePath(f"{src_root / rel} is not a regular file")
        tmp = parent / f".{rel.name}.{os.getpid()}.sdfleet-sync"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644),
                       "wb") as out:
            while block := os.read(fd, 1 << 20):
                out.write(block)
        os.utime(tmp, ns=(src_stat.st_atime_ns, src_stat.st_mtime_ns))
        os.replace(tmp, parent / rel.name)  # replaces a planted link itself, never its target
    finally:
        os.close(fd)


def walk_files(root: Path):
    """(relative path, lstat) of every entry that is not a folder, never entering links."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in filenames + [d for d in dirnames if (base / d).is_symlink()]:
            path = base / name
            try:
                yield PurePosixPath(path.relative_to(root).as_posix()), os.lstat(path)
            except FileNotFoundError:
                continue


def pull(config: SyncConfig, identity: str) -> int:
    source = person_folder(config.users_root, identity)
    if not source.exists():
        os.makedirs(source, mode=0o700, exist_ok=True)
        return 0
    config.scratch_home.mkdir(parents=True, exist_ok=True)
    now, copied = time.time(), 0
    for rel, st_ in walk_files(source):
        if should_pull(rel, st_, now, config.recent_seconds):
            try:
                safe_copy(source, rel, config.scratch_home)
                copied += 1
            except (UnsafePath, OSError) as exc:
                log("sync-skipped", level="warning", direction="in", path=str(rel), cause=str(exc))
    return copied


def push(config: SyncConfig, identity: str) -> int:
    dest = person_folder(config.users_root, identity)
    if not config.scratch_home.is_dir():
        return 0
    dest.mkdir(mode=0o700, exist_ok=True)
    copied = 0
    for rel, st_ in walk_files(config.scratch_home):
        try:
            dest_st = os.lstat(dest / rel)
        except (FileNotFoundError, NotADirectoryError):
            dest_st = None
        if should_push(rel, st_, dest_st, config.max_file_bytes):
            try:
                safe_copy(config.scratch_home, rel, dest)
                copied += 1
            except (UnsafePath, OSError) as exc:
                log("sync-skipped", level="warning", direction="out", path=str(rel), cause=str(exc))
    return copied


class UserSync:
    def __init__(self, config: SyncConfig, sdk: AgonesSdk):
        self.config, self.sdk = config, sdk
        self.stop = threading.Event()
        self.wake = threading.Event()
        self.latest: dict | None = None
        self.bound: str | None = None
        self.halted = False  # after a conflict or refusal nothing is copied any more

    def watch(self) -> None:
        """Follow the game server: read it whole, then its changes; a quiet watch ends
        without error and is re-opened at once (after a fresh read); only a failure backs off."""
        delay = 0.2
        while not self.stop.is_set():
            try:
                self.latest = self.sdk.gameserver()
                self.wake.set()
                for gameserver in self.sdk.watch(self.stop):
                    self.latest = gameserver
                    self.wake.set()
                delay = 0.2
                continue
            except AgonesUnavailable as exc:
                log("agones-unavailable", level="warning", cause=str(exc))
            self.stop.wait(delay)
            delay = min(delay * 2, 10.0)

    def step(self) -> None:
        if self.halted or self.latest is None:
            return
        decision = binding_decision(self.bound, self.latest)
        if decision.action == "bind":
            self.bound = decision.identity
            count = pull(self.config, self.bound)
            log("sync-pulled", identity=self.bound, files=count)
        elif decision.action in ("sync", "final") and self.bound:
            count = push(self.config, self.bound)
            if count or decision.action == "final":
                log("sync-pushed", identity=self.bound, files=count, final=decision.action == "final")
        elif decision.action in ("refuse", "conflict"):
            self.halted = True
            log("sync-halted", level="error", reason=decision.reason)

    def final(self) -> None:
        if self.bound and not self.halted:
            count = push(self.config, self.bound)
            log("sync-pushed", identity=self.bound, files=count, final=True)

    def run(self) -> None:
        threading.Thread(target=self.watch, daemon=True, name="agones-watch").start()
        while not self.stop.is_set():
            self.wake.wait(self.config.interval)
            self.wake.clear()
            if self.stop.is_set():
                break
            try:
                self.step()
            except (UnsafePath, OSError) as exc:
                log("sync-error", level="error", cause=str(exc))
        self.final()


def main() -> int:
    try:
        config = SyncConfig.from_env()
    except st.SettingError as exc:
        log("config-error", level="error", cause=str(exc))
        return 2
    sync = UserSync(config, AgonesSdk(config.agones_port))

    def on_signal(name: str) -> None:
        log("signal", signal=name)
        sync.stop.set()
        sync.wake.set()

    on_termination(on_signal)
    log("usersync-starting", users_root=str(config.users_root), scratch=str(config.scratch_home))
    sync.run()
    log("usersync-stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
