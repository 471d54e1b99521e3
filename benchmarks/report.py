"""The one format every benchmark prints (parsed by CI dashboards and humans alike)."""

from __future__ import annotations


def _fmt(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:.0f}"


def bench_line(name: str, value: float, unit: str, goal: str,
               baseline: float | None = None, ratio: float | None = None) -> str:
    """`BENCH name=<id> value=<n> unit=<u> baseline=<n|-> ratio=<n|-> goal=<text>`."""
    return (f"BENCH name={name} value={_fmt(value)} unit={unit} baseline={_fmt(baseline)} "
            f"ratio={_fmt(ratio)} goal={goal}")


def emit(name: str, value: float, unit: str, goal: str,
         baseline: float | None = None, ratio: float | None = None) -> None:
    print(bench_line(name, value, unit, goal, baseline, ratio), flush=True)
