"""`make bench`: runs every benchmarks/bench_*.py in its own process, in name order.

Each module prints its own BENCH lines (see benchmarks/report.py); anything else it prints
goes to stderr so stdout stays one line per benchmark. A benchmark that crashes is reported
as a failure line and makes the run exit non-zero, but never hides the others' results.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    failed = []
    for path in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        module = f"benchmarks.{path.stem}"
        proc = subprocess.run([sys.executable, "-m", module], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=None, timeout=1200)
        for line in proc.stdout.splitlines():
            (sys.stdout if line.startswith("BENCH ") else sys.stderr).write(line + "\n")
        sys.stdout.flush()
        if proc.returncode != 0:
            failed.append(module)
            print(f"benchmark {module} failed with exit code {proc.returncode}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
