"""Cron arithmetic: how many hours a week a peak window covers, how often a job runs.

The expressions come from the validated config (components/config/ checks them); this only
counts the times they name, and raises ValueError for one it cannot count."""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from .assumptions import REFERENCE_YEAR

_NAMES = {
    "dow": {n: i for i, n in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"])},
    "month": {n: i + 1 for i, n in enumerate(["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                                "AUG", "SEP", "OCT", "NOV", "DEC"])},
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("dom", 1, 31), ("month", 1, 12), ("dow", 0, 7))


def _cron_field(text: str, name: str, lo: int, hi: int) -> tuple[set[int], bool]:
    """(values, restricted) of one cron field: *, n, a-b, lists, /step, month/day names."""
    values: set[int] = set()
    names = _NAMES.get(name, {})

    def number(token: str) -> int:
        value = names.get(token.upper(), None)
        value = int(token) if value is None else value
        if not lo <= value <= hi:
            raise ValueError(f"cron {name} {token!r} is outside {lo}-{hi}")
        return value

    for part in text.split(","):
        base, _, step = part.partition("/")
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, b = base.split("-", 1)
            start, end = number(a), number(b)
        else:
            start = number(base)
            end = hi if step else start
        values.update(range(start, end + 1, int(step) if step else 1))
    if name == "dow" and 7 in values:
        values = (values - {7}) | {0}  # 7 is Sunday too
    return values, text != "*"


def _cron(expr: str) -> dict[str, tuple[set[int], bool]]:
    parts = expr.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expr!r} needs 5 fields")
    return {name: _cron_field(text, name, lo, hi) for text, (name, lo, hi) in zip(parts, _FIELDS)}


def _cron_days(fields: dict) -> list[date]:
    """Days of the reference year on which the cron fires (dom and dow OR-ed when both set)."""
    (doms, dom_set), (months, _), (dows, dow_set) = fields["dom"], fields["month"], fields["dow"]
    days, day = [], date(REFERENCE_YEAR, 1, 1)
    while day.year == REFERENCE_YEAR:
        if day.month in months:
            dom_ok, dow_ok = day.day in doms, (day.isoweekday() % 7) in dows
            if (dom_ok or dow_ok) if (dom_set and dow_set) else (dom_ok and dow_ok):
                days.append(day)
        day += timedelta(days=1)
    return days


def runs_per_month(expr: str) -> float:
    fields = _cron(expr)
    per_day = len(fields["minute"][0]) * len(fields["hour"][0])
    return len(_cron_days(fields)) * per_day / 12


def duration_hours(text: str) -> float:
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?", text)
    if not match or not text:
        raise ValueError(f"duration {text!r}: expected e.g. 10h or 1h30m")
    return int(match.group(1) or 0) + int(match.group(2) or 0) / 60


def window_hours_per_week(start_cron: str, duration: str) -> float:
    """Average hours per week inside windows that open at `start_cron` and last `duration`
    (overlapping windows counted once; the time zone shifts the windows, not their length)."""
    fields = _cron(start_cron)
    length = round(duration_hours(duration) * 60)
    starts_in_day = sorted(h * 60 + m for h in fields["hour"][0] for m in fields["minute"][0])
    year_minutes = (366 if calendar.isleap(REFERENCE_YEAR) else 365) * 1440
    covered = bytearray(year_minutes + length + 1)
    for day in _cron_days(fields):
        offset = (day - date(REFERENCE_YEAR, 1, 1)).days * 1440
        begin = end = None
        for start in starts_in_day:  # merge overlapping windows before marking them
            s, e = offset + start, offset + start + length
            if end is not None and s <= end:
                end = max(end, e)
                continue
            if begin is not None:
                covered[begin:end] = b"\x01" * (end - begin)
            begin, end = s, e
        if begin is not None:
            covered[begin:end] = b"\x01" * (end - begin)
    # Windows that run past the year's end wrap onto its start, like the next year's.
    tail = covered[year_minutes:]
    total = covered[:year_minutes].count(1) + sum(1 for i, v in enumerate(tail) if v and not covered[i])
    return total / 60 / (year_minutes / 1440 / 7)
