"""The manifest of verified files, kept next to them as ``<root>/.sdfleet-manifest.json``.

Why: a verified file must never be fetched again and must need no network (pods start
from the shared store; a baked image has no network to spare). The manifest records, per
model name, what was verified (source key, relative path, size, SHA-256); the check that
a file is still what was verified is ``verified_entry``: same source, same expected hash
if the config names one, and the file is still there with the recorded size. Re-hashing
gigabytes on every start is what the manifest avoids (``--verify-hashes`` does it on
demand).

Writes are atomic (temporary file in the same folder, fsync, rename), so a crash never
leaves a half-written manifest, and a half-written model never has an entry: entries
are added only after the file was verified and renamed into place.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

MANIFEST_NAME = ".sdfleet-manifest.json"


@dataclass(frozen=True)
class VerifiedFile:
    name: str
    kind: str
    path: str  # relative to the models root
    size: int
    sha256: str
    source: str


class Manifest:
    """Read-modify-write of the manifest under a lock (the fetcher downloads in threads)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self._lock = threading.Lock()
        self._data = self._read()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"version": 1, "models": {}}
        except (OSError, json.JSONDecodeError):
            # An unreadable manifest only costs re-verification, never wrong data.
            return {"version": 1, "models": {}}
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            return {"version": 1, "models": {}}
        return data

    def entry(self, name: str) -> VerifiedFile | None:
        raw = self._data["models"].get(name)
        if not isinstance(raw, dict):
            return None
        try:
            return VerifiedFile(name=name, kind=raw["kind"], path=raw["path"], size=int(raw["size"]),
                                sha256=raw["sha256"], source=raw["source"])
        except (KeyError, TypeError, ValueError):
            return None

    def record(self, verified: VerifiedFile) -> None:
        with self._lock:
            self._data["models"][verified.name] = {
                "kind": verified.kind, "path": verified.path, "size": verified.size,
                "sha256": verified.sha256, "source": verified.source, "verifiedAt": time.time()}
            self._write()

    def set_default_checkpoint(self, name: str | None, path: str | None) -> None:
        with self._lock:
            self._data["defaultCheckpoint"] = {"name": name, "path": path} if name else None
            self._write()

    def default_checkpoint_path(self) -> str | None:
        value = self._data.get("defaultCheckpoint")
        return value.get("path") if isinstance(value, dict) else None

    def _write(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sdfleet-manifest-", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self._data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def verified_entry(manifest: Manifest, name: str, source_key: str,
                   expected_sha256: str | None) -> tuple[VerifiedFile | None, str]:
    """The decision rule "this model is already verified": (entry or None, reason)."""
    entry = manifest.entry(name)
    if entry is None:
        return None, "not in the manifest"
    if entry.source != source_key:
        return None, f"the manifest has it from another source ({entry.source})"
    if expected_sha256 and entry.sha256 != expected_sha256:
        return None, "the configured sha256 differs from the verified one"
    file = manifest.root / entry.path
    try:
        stat = file.lstat()
    except FileNotFoundError:
        return None, f"{entry.path} is missing"
    if entry.kind == "extension":
        return (entry, "verified") if file.is_dir() else (None, f"{entry.path} is not a folder")
    if not file.is_file() or file.is_symlink():
        return None, f"{entry.path} is not a regular file"
    if stat.st_size != entry.size:
        return None, f"{entry.path} has {stat.st_size} bytes, verified size was {entry.size}"
    return entry, "verified"
