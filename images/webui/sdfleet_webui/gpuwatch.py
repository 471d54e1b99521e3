"""Is the GPU working? A session whose GPU is busy is not idle, even with no browser traffic
(a ComfyUI queue running with the tab closed). Sampled through NVML (nvidia-ml-py's pynvml,
NVIDIA's own binding): the mean utilisation of the busiest GPU over a window, at or above a
threshold, counts as activity; the supervisor reports it through the Agones SDK as
"gpu-activity", and the culler and the front count it like the front's own report.

A pod without a GPU (tests, the batch workers' CPU runs) has no NVML library: the watch
reports nothing, ever.
"""

from __future__ import annotations

import time
from collections import deque

from .logs import log


class GpuWatch:
    def __init__(self, busy_percent: float = 20.0, window: float = 60.0, nvml=None,
                 clock=time.time):
        self.busy_percent, self.window, self.clock = busy_percent, window, clock
        self.samples: deque[tuple[float, float]] = deque()
        self.handles: list = []
        self.nvml = None
        try:
            if nvml is None:
                import pynvml as nvml
            nvml.nvmlInit()
            self.handles = [nvml.nvmlDeviceGetHandleByIndex(i)
                            for i in range(nvml.nvmlDeviceGetCount())]
            self.nvml = nvml
            log("gpu-watch", gpus=len(self.handles), busy_percent=busy_percent, window=window)
        except Exception as exc:  # NVMLError_LibraryNotFound on a pod without a GPU, ...
            log("gpu-watch-off", cause=type(exc).__name__)

    @property
    def available(self) -> bool:
        return self.nvml is not None and bool(self.handles)

    def sample(self) -> float | None:
        """The busiest GPU's utilisation now (percent), kept for the window."""
        if not self.available:
            return None
        try:
            value = max(float(self.nvml.nvmlDeviceGetUtilizationRates(h).gpu) for h in self.handles)
        except Exception as exc:  # a GPU fallen off the bus: no sample, not a crash
            log("gpu-sample-failed", level="warning", cause=type(exc).__name__)
            return None
        now = self.clock()
        self.samples.append((now, value))
        while self.samples and now - self.samples[0][0] > self.window:
            self.samples.popleft()
        return value

    def busy(self) -> bool:
        """The mean over the window reaches the threshold (a single spike does not)."""
        if not self.samples:
            return False
        return sum(v for _, v in self.samples) / len(self.samples) >= self.busy_percent
