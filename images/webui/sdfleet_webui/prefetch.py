"""Read the default checkpoint into the node's page cache while the framework starts.

A framework reads its checkpoint once it has imported torch and built the model, 10-30 s after
it starts, and then reads it from start to end in one stream: over NFS one stream gets the
kernel's read-ahead (128 KiB) at a time, far below what the share serves. Reading the file
here first, in several large reads at once, starts those seconds earlier and keeps several
requests in flight (spread over the mount's `nconnect` connections), so the framework then
reads from memory. Nothing is kept: each chunk goes into one reused buffer per worker.

A failure here only costs the speed-up: the framework reads the file itself either way.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

CHUNK_BYTES = 8 * 1024 * 1024
PROGRESS_EVERY_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Prefetched:
    path: str
    bytes_read: int
    seconds: float
    error: Optional[str] = None

    @property
    def mib_per_second(self) -> float:
        return self.bytes_read / (1024 * 1024) / self.seconds if self.seconds > 0 else 0.0


def prefetch(path: Path, workers: int = 8, chunk: int = CHUNK_BYTES,
             progress: Callable[[int, int], None] | None = None,
             stop: threading.Event | None = None) -> Prefetched:
    """Read all of `path` with `workers` parallel reads of `chunk` bytes; `progress(done,
    total)` about every GiB; `stop` ends it early (the WebUI is stopping)."""
    started = time.monotonic()
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        return Prefetched(str(path), 0, 0.0, f"{type(exc).__name__}: {exc.strerror}")
    try:
        size = os.fstat(fd).st_size
        offsets = range(0, size, chunk)
        lock = threading.Lock()
        done = [0, 0]   # bytes read, bytes at the last progress call
        local = threading.local()

        def read(offset: int) -> None:
            if stop is not None and stop.is_set():
                return
            buffer = getattr(local, "buffer", None)
            if buffer is None:
                buffer = local.buffer = bytearray(chunk)
            n = os.preadv(fd, [buffer], offset)
            with lock:
                done[0] += n
                if progress is not None and done[0] - done[1] >= PROGRESS_EVERY_BYTES:
                    done[1] = done[0]
                    progress(done[0], size)

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prefetch") as pool:
            for future in [pool.submit(read, offset) for offset in offsets]:
                future.result()
        return Prefetched(str(path), done[0], time.monotonic() - started)
    except OSError as exc:
        return Prefetched(str(path), 0, time.monotonic() - started,
                          f"{type(exc).__name__}: {exc.strerror}")
    finally:
        os.close(fd)
