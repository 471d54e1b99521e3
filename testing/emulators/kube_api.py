"""What every emulated Kubernetes API answers with: private copies of stored objects, Status
bodies, and label selectors parsed as the API server parses them."""

from __future__ import annotations

import json
import re


def _copy(obj):
    """A private copy of stored JSON data (the C JSON codec is far quicker than deepcopy)."""
    return json.loads(json.dumps(obj))


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Selector:
    """A parsed label selector: `matches(labels)`, and the equality/set requirements
    (`(key, values)`) an index can use to find candidates without scanning."""

    def __init__(self, tests: list, lookups: list):
        self.tests, self.lookups = tests, lookups

    def __call__(self, labels: dict) -> bool:
        return all(t(labels) for t in self.tests)

    matches = __call__


def parse_label_selector(selector: str) -> Selector:
    """The Kubernetes label selector syntax, as a predicate over a labels dict."""
    tests, lookups = [], []
    # split on commas that are not inside parentheses
    parts, depth, current = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    for raw in (p.strip() for p in parts):
        if not raw:
            continue
        m = re.fullmatch(r"(\S+)\s+(in|notin)\s+\(([^)]*)\)", raw)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            if op == "in":
                tests.append(lambda l, k=key, vs=values: l.get(k) in vs)
                lookups.append((key, values))
            else:
                tests.append(lambda l, k=key, vs=values: l.get(k) not in vs)
            continue
        m = re.fullmatch(r"([^!=\s]+)\s*(==|=|!=)\s*(\S*)", raw)
        if m:
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda l, k=key, v=value: l.get(k) != v)
            else:
                tests.append(lambda l, k=key, v=value: l.get(k) == v)
                lookups.append((key, {value}))
            continue
        if raw.startswith("!"):
            tests.append(lambda l, k=raw[1:]: k not in l)
            continue
        if re.fullmatch(r"[A-Za-z0-9./_-]+", raw):
            tests.append(lambda l, k=raw: k in l)
            continue
        raise ValueError(f"unable to parse requirement: {raw!r}")
    return Selector(tests, lookups)
