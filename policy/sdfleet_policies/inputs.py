"""Reading resource inputs as the engine sends them (camelCase), including values that are
only known after deployment: `read` returns `UNKNOWN` instead of raising."""

from __future__ import annotations

import json
from typing import Any, Mapping

from pulumi_policy.proxy import UnknownValueError

_MISSING = object()


class Unknown:
    """Marks a value that is only known after deployment (see `read`)."""

    def __repr__(self) -> str:
        return "<known after deployment>"


UNKNOWN = Unknown()


def read(props: Any, *path: Any, default: Any = None) -> Any:
    """props[path...] or `default` when absent; `UNKNOWN` when a step is unknown in preview."""
    value = props
    for key in path:
        try:
            if isinstance(key, int):
                if not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
                    return default
                value = value[key] if -len(value) <= key < len(value) else _MISSING
            elif isinstance(value, Mapping):
                value = value[key] if key in value else _MISSING
            else:
                return default
        except UnknownValueError:
            return UNKNOWN
        if value is _MISSING or value is None:
            return default
    return value


def items(value: Any) -> list:
    """A list input as a list ([] when absent or unknown)."""
    if value is None or isinstance(value, (Unknown, str, Mapping)):
        return []
    out = []
    for i in range(len(value)):
        try:
            out.append(value[i])
        except UnknownValueError:
            out.append(UNKNOWN)
    return out


def mapping(value: Any) -> dict:
    """A map input as a plain dict of its known entries ({} when absent or unknown)."""
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for key in value:
        try:
            out[key] = value[key]
        except UnknownValueError:
            out[key] = UNKNOWN
    return out


def as_json(value: Any) -> Any:
    """A JSON-document input (IAM policy data, provider config) parsed; None when not JSON."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
