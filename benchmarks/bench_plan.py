"""`plan.seconds`: wall time of `make plan` on the default stack (what a user waits for)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

from benchmarks.report import emit
from tools.preview import ROOT


def main() -> None:
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "dev"], cwd=ROOT,
                       check=True, stdout=subprocess.DEVNULL)
        runs.append(time.perf_counter() - start)
    emit("plan.seconds", statistics.median(runs), "s", "<5")


if __name__ == "__main__":
    main()
