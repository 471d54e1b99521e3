"""A busy GPU is activity: the supervisor samples NVML through nvidia-ml-py (the real binding)
loaded against a fake libnvidia-ml.so.1 built here from tests/images/fake_nvml/fake_nvml.c,
whose utilisation the test sets; a pod without the library reports nothing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sdfleet_webui.agones_lifecycle import AgonesLifecycle
from sdfleet_webui.gpuwatch import GpuWatch

from tests.images.conftest import child_env

HERE = Path(__file__).resolve().parent
PROBE = """
import json, sys, time
from sdfleet_webui.gpuwatch import GpuWatch
clock = [1000.0]
watch = GpuWatch(busy_percent=50, window=60, clock=lambda: clock[0])
out = {"available": watch.available, "gpus": len(watch.handles), "steps": []}
for line in sys.stdin:
    path, value = line.split()
    open(path, "w").write(value)
    clock[0] += 5
    out["steps"].append([watch.sample(), watch.busy()])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("nvml")
    gcc = shutil.which("gcc")
    assert gcc, "gcc (a Debian package in tests/debian-packages.txt) builds the fake NVML"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(folder / "libnvidia-ml.so.1"),
                    str(HERE / "fake_nvml" / "fake_nvml.c")], check=True)
    return folder


def _run(env: dict, lines: list[str]) -> dict:
    answer = subprocess.run([sys.executable, "-c", PROBE], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, env=env, timeout=60, check=True)
    return json.loads(answer.stdout.strip().splitlines()[-1])


def test_a_busy_gpu_counts_and_a_spike_does_not(fake_nvml, tmp_path):
    util = tmp_path / "util"
    env = child_env(LD_LIBRARY_PATH=str(fake_nvml), FAKE_NVML_UTILIZATION=str(util),
                    FAKE_NVML_GPUS="2")
    out = _run(env, [f"{util} 0", f"{util} 95", f"{util} 0", f"{util} 0",
                     f"{util} 90", f"{util} 90", f"{util} 90", f"{util} 90"])
    assert out["available"] and out["gpus"] == 2
    values = [v for v, _ in out["steps"]]
    busy = [b for _, b in out["steps"]]
    assert values == [0, 95, 0, 0, 90, 90, 90, 90]
    # The window's mean decides (threshold 50 %): one 95 % spike among zeros never reaches
    # it; a queue keeping the GPU at 90 % does, after a few samples.
    assert busy == [False, False, False, False, False, False, True, True]


def test_no_nvml_library_reports_nothing(tmp_path):
    env = child_env(LD_LIBRARY_PATH=str(tmp_path))   # no libnvidia-ml here
    out = _run(env, [f"{tmp_path / 'u'} 100"])
    assert out == {"available": False, "gpus": 0, "steps": [[None, False]]}


class FakeNvml:
    def __init__(self, values):
        self.values = list(values)

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetUtilizationRates(self, handle):
        return type("U", (), {"gpu": self.values.pop(0)})()


class RecordingSdk:
    def __init__(self):
        self.annotations = []

    def set_annotation(self, key, value):
        self.annotations.append((key, value))


def test_the_supervisor_reports_a_busy_gpu_through_agones_throttled():
    clock = [0.0]
    watch = GpuWatch(busy_percent=50, window=30, nvml=FakeNvml([80] * 10 + [0] * 10),
                     clock=lambda: clock[0])
    sdk = RecordingSdk()
    lifecycle = AgonesLifecycle.__new__(AgonesLifecycle)
    lifecycle.sdk, lifecycle.gpu, lifecycle.gpu_reported_at = sdk, watch, None
    for t in range(0, 100, 5):
        clock[0] = float(t)
        lifecycle.report_gpu(float(t))
    times = [int(v) for k, v in sdk.annotations if k == "gpu-activity"]
    assert times == [0, 30]                       # busy: reported, at most every 30 s
    assert all(k == "gpu-activity" for k, _ in sdk.annotations)
