"""Reading the plan (resources by type, inputs that may be unknown) and the sheet of cost lines."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from .assumptions import UNKNOWN_MARK


def read(value: Any, *path: Any, default: Any = None) -> Any:
    """value[path...], or `default` when a step is absent or unknown (known after deployment)."""
    for key in path:
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
            value = value[key]
        else:
            return default
    return default if value is None or value == UNKNOWN_MARK else value


def number(value: Any) -> Optional[float]:
    """A count or size input as a number (Kubernetes quantities like "1" included), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def memory_mib(text: Any) -> Optional[float]:
    """"512M", "512Mi", "1G", "1Gi" as MiB (Cloud Run functions treat M and Mi alike)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([MG])i?B?", str(text or ""), re.IGNORECASE)
    if not match:
        return None
    return float(match.group(1)) * (1024 if match.group(2).upper() == "G" else 1)


@dataclass
class Sheet:
    hours: float
    lines: list[dict] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    usage_billed: list[str] = field(default_factory=list)
    profile_hours: dict[str, float] = field(default_factory=dict)  # one person-hour per profile

    def add(self, item: str, monthly: float, note: str = "") -> None:
        self.lines.append({"item": item, "monthlyUsd": round(monthly, 2), "note": note})

    def miss(self, what: str) -> None:
        if what not in self.missing:
            self.missing.append(what)

    def lookup(self, table: dict, key: Any, what: str) -> Optional[Any]:
        if isinstance(key, str) and key in table:
            return table[key]
        self.miss(what)
        return None


@dataclass
class Plan:
    """The plan's resources by type, and what each pricer has consumed."""
    resources: list
    by_type: dict[str, list] = field(default_factory=lambda: defaultdict(list))

    def __post_init__(self):
        for r in self.resources:
            self.by_type[r.type].append(r)

    def of(self, *types: str) -> list:
        return [r for t in types for r in self.by_type.get(t, [])]
