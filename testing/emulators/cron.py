"""Standard five-field cron specs, parsed as robfig/cron's ParseStandard (the Agones Schedule
policy's parser) accepts them."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_CRON_FIELD = re.compile(r"^(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?(,(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?)*$")
_CRON_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [{}, {}, {}, {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())},
    {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}]


def parse_standard_cron(spec: str) -> None:
    """robfig/cron/v3 `ParseStandard` (what fleetautoscaler.go calls): five fields, or a
    `@descriptor`, after an optional `CRON_TZ=<zone> ` / `TZ=<zone> ` prefix; numbers in
    range, names for month and weekday. Raises ValueError."""
    if spec.startswith(("TZ=", "CRON_TZ=")):
        zone, _, spec = spec.partition(" ")
        try:
            ZoneInfo(zone.split("=", 1)[1])
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"provided bad location {zone}") from None
    if spec.startswith("@"):
        if spec not in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                        "@hourly") and not spec.startswith("@every "):
            raise ValueError(f"unrecognized descriptor: {spec}")
        return
    fields = spec.split()
    if len(fields) != 5:
        raise ValueError(f"expected exactly 5 fields, found {len(fields)}: {fields}")
    for text, (low, high), names in zip(fields, _CRON_BOUNDS, _CRON_NAMES):
        if text == "?":
            continue
        if not _CRON_FIELD.match(text):
            raise ValueError(f"failed to parse {text!r}")
        for part in text.split(","):
            rng, _, step = part.partition("/")
            if step and int(step) == 0:
                raise ValueError(f"step of range should be a positive number: {part}")
            if rng == "*":
                continue
            for bound in rng.split("-"):
                value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
                if value is None:
                    raise ValueError(f"failed to parse int from {bound}")
                if not low <= value <= high:
                    raise ValueError(f"{value} out of range [{low}, {high}]")
