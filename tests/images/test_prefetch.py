"""The checkpoint is read into the page cache while the framework starts: every byte, with
several reads in flight and bounded memory; a missing file or a stop costs only the
speed-up; the supervisor starts it with the WebUI and records when it finished."""

from __future__ import annotations

import os
import threading
import time
import tracemalloc

from sdfleet_webui.prefetch import prefetch

from tests.images.supervisor_harness import SupervisorUnderTest


def _file(path, size: int):
    path.write_bytes(os.urandom(size))
    return path


def test_every_byte_is_read_in_parallel_chunks_with_bounded_memory(tmp_path, monkeypatch):
    size = 40 * 1024 * 1024 + 12345          # not a whole number of chunks
    path = _file(tmp_path / "model.safetensors", size)
    in_flight, most = [0], [0]
    lock = threading.Lock()
    real = os.preadv

    def counting(fd, buffers, offset):
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        try:
            time.sleep(0.01)                  # a network round trip
            return real(fd, buffers, offset)
        finally:
            with lock:
                in_flight[0] -= 1

    monkeypatch.setattr(os, "preadv", counting)
    seen = []
    tracemalloc.start()
    result = prefetch(path, workers=4, chunk=1024 * 1024,
                      progress=lambda done, total: seen.append((done, total)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.error is None and result.bytes_read == size
    assert most[0] == 4                       # four reads in flight, not one
    assert peak < 4 * 1024 * 1024 + 2 * 1024 * 1024   # one buffer per worker, nothing kept
    assert result.mib_per_second > 0


def test_progress_is_told_about_every_gib(tmp_path, monkeypatch):
    import sdfleet_webui.prefetch as module
    monkeypatch.setattr(module, "PROGRESS_EVERY_BYTES", 4 * 1024 * 1024)
    path = _file(tmp_path / "m", 16 * 1024 * 1024)
    seen = []
    prefetch(path, workers=2, chunk=1024 * 1024, progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == [4 << 20, 8 << 20, 12 << 20, 16 << 20]
    assert {t for _, t in seen} == {16 << 20}


def test_a_missing_file_or_a_stop_only_costs_the_speed_up(tmp_path):
    missing = prefetch(tmp_path / "nope.safetensors")
    assert missing.bytes_read == 0 and "FileNotFoundError" in missing.error
    stop = threading.Event()
    stop.set()
    stopped = prefetch(_file(tmp_path / "m", 4 * 1024 * 1024), workers=2, chunk=1024 * 1024, stop=stop)
    assert stopped.error is None and stopped.bytes_read == 0


def test_the_supervisor_reads_the_default_checkpoint_as_the_webui_starts(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _file(models / "base.safetensors", 24 * 1024 * 1024)
    with SupervisorUnderTest(tmp_path, [{"start_delay": 0.5}],
                             SDFLEET_DEFAULT_CHECKPOINT_PATH="base.safetensors") as sup:
        info = sup.wait_for(lambda i: "checkpointRead" in i["coldStart"], what="checkpoint read")
        read = sup.events("checkpoint-read")
        assert len(read) == 1 and read[0]["mib"] == 24 and read[0]["error"] is None
        assert info["coldStart"]["checkpointRead"] >= info["coldStart"]["webuiStarted"]
        sup.wait_for(lambda i: i["state"] == "ready", what="ready")


def test_prefetch_can_be_turned_off(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    _file(models / "base.safetensors", 1024 * 1024)
    with SupervisorUnderTest(tmp_path, [{}], SDFLEET_DEFAULT_CHECKPOINT_PATH="base.safetensors",
                             SDFLEET_PREFETCH_WORKERS="0") as sup:
        info = sup.wait_for(lambda i: i["state"] == "ready", what="ready")
        assert "checkpointRead" not in info["coldStart"] and not sup.events("checkpoint-read")
