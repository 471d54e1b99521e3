"""GPU-hour budgets as the allocator reads them (`SDFLEET_BUDGETS`, written by the stack from
config `budgets`; components/config/budgets.py budget_records). Absent: no budgets."""

from __future__ import annotations

import calendar
import json
import time
from dataclasses import dataclass

from .env import BUDGETS


class BudgetsError(ValueError):
    pass


@dataclass(frozen=True)
class Budgets:
    default_gpu_hours: float | None
    members: tuple[tuple[str, float, str | None], ...]   # (member, GPU-hours, profile or None)
    contact: str
    reset_day: int = 1        # budgets (and the ledger's months) run from this day, UTC


def load_budgets(env) -> Budgets | None:
    raw = env.get(BUDGETS)
    if not raw:
        return None
    try:
        data = json.loads(raw)
        default = data.get("defaultGpuHours")
        return Budgets(float(default) if default is not None else None,
                       tuple((str(m["member"]), float(m["gpuHours"]), m.get("profile") or None)
                             for m in data.get("members") or []),
                       str(data.get("contact") or "the platform's administrators"),
                       int(data.get("resetDay") or 1))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BudgetsError(f"{BUDGETS} is malformed") from None


def period_start(now: float, reset_day: int = 1) -> tuple[int, int]:
    """(year, month) of the budget month `now` is in: it starts on `reset_day` (UTC)."""
    t = time.gmtime(now)
    if t.tm_mday >= reset_day:
        return t.tm_year, t.tm_mon
    return (t.tm_year - 1, 12) if t.tm_mon == 1 else (t.tm_year, t.tm_mon - 1)


def period_label(now: float, reset_day: int = 1) -> str:
    """`YYYY-MM` of the budget month `now` is in (the ledger's key)."""
    year, month = period_start(now, reset_day)
    return f"{year:04d}-{month:02d}"


def next_month_start(now: float, reset_day: int = 1) -> float:
    """When the next budget month begins (UTC): budgets reset then."""
    year, month = period_start(now, reset_day)
    year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return float(calendar.timegm((year, month, reset_day, 0, 0, 0, 0, 0, 0)))


def budget_reset_day(env) -> int:
    """The day budget months start on (both functions key the ledger by it)."""
    try:
        budgets = load_budgets(env)
    except BudgetsError:
        return 1
    return budgets.reset_day if budgets else 1
