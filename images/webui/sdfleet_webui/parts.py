"""A download's partial file: where it is, what it is part of, its progress, and its checked
placement under the final name. Shared by the direct downloads and the Hugging Face Hub's."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from .httpclient import FetchError
from .logs import log
from .manifest import VerifiedFile
from .sources import DownloadPlan

CHUNK = 1 << 20


def sha256_of(path: Path, upto: int | None = None):
    digest = hashlib.sha256()
    remaining = upto
    with open(path, "rb") as handle:
        while remaining is None or remaining > 0:
            block = handle.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest


class Progress:
    """tqdm on a terminal; a structured log line every few seconds otherwise (Job logs)."""

    def __init__(self, name: str, total: int | None, initial: int, every_seconds: float):
        self.name, self.total, self.done = name, total, initial
        self.every, self.last = every_seconds, 0.0
        self.bar = (tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name,
                         file=sys.stderr, leave=False) if sys.stderr.isatty() else None)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            pct = round(100.0 * self.done / self.total, 1) if self.total else None
            log("download-progress", model=self.name, bytes=self.done, total=self.total, percent=pct)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class PartState:
    """What the partial file is part of, persisted beside it."""

    def __init__(self, path: Path, source_key: str):
        self.path, self.source_key = path, source_key
        self.filename: str | None = None
        self.total: int | None = None
        self.validator: str | None = None

    @classmethod
    def load(cls, path: Path, source_key: str) -> "PartState | None":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if data.get("source") != source_key:
            return None
        state = cls(path, source_key)
        state.filename, state.total, state.validator = data.get("filename"), data.get("total"), data.get("validator")
        return state

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"source": self.source_key, "filename": self.filename,
                                   "total": self.total, "validator": self.validator}))
        os.replace(tmp, self.path)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def verify_and_place(plan: DownloadPlan, part: Path, meta_path: Path, state: PartState,
                      hasher) -> VerifiedFile:
    size = part.stat().st_size

    def reject(cause: str) -> FetchError:
        part.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        return FetchError(plan.name, cause + "; the downloaded file was discarded")

    expected_size = plan.size or state.total
    if expected_size is not None and size != expected_size:
        raise reject(f"size mismatch: expected {expected_size} bytes, got {size}")
    digest = (hasher or sha256_of(part)).hexdigest()
    if plan.sha256 and digest != plan.sha256:
        raise reject(f"SHA-256 mismatch: expected {plan.sha256}, got {digest}")
    folder = part.parent
    final = folder / (state.filename or plan.name)
    os.chmod(part, 0o644)
    os.replace(part, final)
    meta_path.unlink(missing_ok=True)
    _fsync_dir(folder)
    log("download-verified", model=plan.name, path=str(final), bytes=size, sha256=digest,
        checked_against="source hash" if plan.sha256 else "size only (source gives no hash)")
    return VerifiedFile(name=plan.name, kind=plan.kind, path=f"{plan.folder}/{final.name}",
                        size=size, sha256=digest, source=plan.source_key)
