"""The functions print the lines their metrics are made of (functions/shared/metrics.py), with
every field a metric extracts: a metric on a line nobody prints, or a field renamed on one
side, would be a flat line on the dashboard."""

from __future__ import annotations

import json
import time

from shared.metrics import METRICS

from tests.functions.test_allocator import ALICE, post_allocate
from tests.functions.test_cold_starts import _young_pod
from tests.functions.test_culler import run_pass, seed


def _lines(process, message: str) -> list[dict]:
    out = []
    for line in process.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == message:
                out.append(entry)
    return out


def _fields_of(name: str) -> set[str]:
    spec = METRICS[name]
    return set(spec["labels"]) | ({spec["value"]} if spec["kind"] == "distribution" else set())


def test_the_allocator_prints_one_answer_line_per_call(allocator, clean, m_iap, m_agones):
    token = m_iap.mint(sub=ALICE)
    post_allocate(allocator, token)                                   # waiting for a GPU
    m_agones.add_ready("gs-a", "10.8.1.7", 7860)
    post_allocate(allocator, token)                                   # ready
    lines = _lines(allocator, METRICS["sdfleet_allocator_answers"]["message"])[-2:]
    assert [line["outcome"] for line in lines] == ["waiting-for-gpu", "ready"]
    for name in ("sdfleet_allocator_answers", "sdfleet_allocator_latency_ms"):
        for line in lines:
            assert _fields_of(name) <= set(line), (name, line)
            assert isinstance(line["latency_ms"], (int, float)) and line["latency_ms"] >= 0


def test_the_culler_prints_passes_ended_sessions_and_cold_starts(culler, clean, m_iap, m_agones,
                                                                 m_redis_client):
    seed(m_redis_client, m_agones, "g-1", "gs-idle", allocated_ago=3000, active_ago=1000)
    _young_pod(m_agones, f"{m_agones.fleet}-abcde-0", float(int(time.time())) - 600, 100)
    run_pass(culler, m_iap)
    for name in ("sdfleet_culler_pass_ms", "sdfleet_sessions_ended", "sdfleet_cold_start_seconds"):
        lines = _lines(culler, METRICS[name]["message"])
        assert lines and all(_fields_of(name) <= set(line) for line in lines), (name, lines[-1:])
    assert _lines(culler, "session ended")[-1]["reason"] == "idle"
    assert _lines(culler, "cold start")[-1]["total"] == 100.0
