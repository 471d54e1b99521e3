"""The router benchmarks still run, on a tiny load, and print well-formed BENCH lines.

Benchmarks are not tests: nothing here looks at how fast anything is. It only keeps the
benchmark code from rotting between `make bench` runs (a renamed helper, a proxy that no
longer starts, a route CHP no longer accepts, a mix session the router breaks). Both
benchmarks run at once, one second per measurement, so the module takes about 15 s.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys

import pytest

from benchmarks.chp_proxy import CHP_BIN
from testing.router.harness import ROOT

# benchmarks/report.py's format:
# `BENCH name=<id> value=<n> unit=<u> baseline=<n|-> ratio=<n|-> goal=<text>`
LINE = re.compile(r"BENCH name=(?P<name>[a-z0-9_.]+) value=(?P<value>\S+) unit=(?P<unit>\S+) "
                  r"baseline=(?P<baseline>\S+) ratio=(?P<ratio>\S+) goal=(?P<goal>\S+)")
TINY = {"benchmarks.bench_router": ["--rounds", "1", "--seconds", "1", "--warmup", "0"],
        "benchmarks.bench_router_mix": ["--rounds", "1", "--seconds", "1", "--users", "2"]}


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict[str, dict[str, str]]]:
    """module -> BENCH name -> fields, from both benchmarks."""
    if not CHP_BIN.exists():  # the same install step as `make bench` (npm ci, locked version)
        subprocess.run(["make", "-s", (CHP_BIN.parent.parent / ".installed").relative_to(ROOT).as_posix()], cwd=ROOT,
                       check=True, timeout=300)
    # One after the other: each benchmark starts its own routers, verifiers and key servers
    # on free ports, and two processes choosing ports at once can pick the same one.
    results = {}
    for module, args in TINY.items():
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, text=True,
                              capture_output=True, timeout=120)
        assert proc.returncode == 0, f"{module} failed:\n{proc.stderr[-3000:]}"
        results[module] = parse(proc.stdout, proc.stderr)
    return results


def parse(stdout: str, stderr: str) -> dict[str, dict[str, str]]:
    lines = stdout.splitlines()
    assert lines, stderr[-3000:]
    parsed = {}
    for line in lines:
        match = LINE.fullmatch(line)
        assert match, f"malformed: {line!r}"
        fields = match.groupdict()
        assert fields["name"] not in parsed, f"printed twice: {line!r}"
        assert math.isfinite(float(fields["value"])), line
        for key in ("baseline", "ratio"):
            assert fields[key] == "-" or math.isfinite(float(fields[key])), line
        parsed[fields["name"]] = fields
    return parsed


def number(fields: dict[str, str], key: str = "value") -> float:
    return float(fields[key])


def test_router_benchmark_measures_every_proxy_and_prints_its_lines(outputs):
    lines = outputs["benchmarks.bench_router"]
    assert set(lines) == {
        "router.throughput_ratio", "router.p99_added_ms", "router.ratio_vs_chp",
        "router.ratio_vs_naive", "router.two_phase_floor_ratio", "router.cpu_us_per_request",
        "router.chp_cpu_us_per_request", "router.browser_throughput_ratio",
        "router.redis_commands_per_1k_requests"}
    assert lines["router.throughput_ratio"]["goal"] == ">=0.85"
    assert lines["router.ratio_vs_chp"]["goal"] == ">=5"
    for name in ("router.throughput_ratio", "router.ratio_vs_chp", "router.ratio_vs_naive",
                 "router.browser_throughput_ratio"):
        assert number(lines[name]) > 0 and number(lines[name], "baseline") > 0, lines[name]
    # a count of commands is never negative (it was: INFO's own call was subtracted from
    # a sum that never included it)
    assert number(lines["router.redis_commands_per_1k_requests"]) >= 0


def test_mix_benchmark_completes_sessions_through_both_proxies(outputs):
    lines = outputs["benchmarks.bench_router_mix"]
    assert set(lines) == {"router.mix_ratio", "router.mix_cpu_us_per_session",
                          "router.mix_sessions_per_s"}
    assert lines["router.mix_ratio"]["goal"] == ">=0.95"
    assert number(lines["router.mix_sessions_per_s"]) > 0
    assert number(lines["router.mix_sessions_per_s"], "baseline") > 0
    assert number(lines["router.mix_cpu_us_per_session"]) > 0


def test_batch_benchmark_runs_jobs_the_agent_accepts():
    """The batch benchmark builds its messages with the submit function's own builder; a job
    the agent refuses (once: a missing `client` field sent every job to the dead-letter queue)
    makes it exit non-zero. A tiny run: five jobs after one warm-up."""
    code = ("import benchmarks.bench_batch as b; b.JOBS = 5; b.WARMUP = 1; "
            "raise SystemExit(b.main())")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("BENCH ")}
    assert {"name=agent.overhead_ms", "name=agent.cycle_with_aws_ms"} <= names
    assert "dead-letter" not in proc.stderr
