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
                       str(data.get("contact") or "the platform's administrators"))
    except (ValueError, TypeError, KeyError, AttributeError):
        raise BudgetsError(f"{BUDGETS} is malformed") from None


def next_month_start(now: float) -> float:
    """When the calendar month (UTC) after `now`'s begins: budgets reset then."""
    t = time.gmtime(now)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0, 0, 0, 0)))
