"""Typed reading of environment variables, with errors that name the variable.

Each program builds one frozen settings object at start; a bad value stops the program
with a message that names the variable, the value and what is allowed, instead of
failing later in some unrelated place.
"""

from __future__ import annotations

import os
from pathlib import Path


class SettingError(ValueError):
    """A variable holds a value the program cannot use."""


def env_str(name: str, default: str, env: dict | None = None) -> str:
    env = os.environ if env is None else env
    value = env.get(name)
    return default if value is None or value == "" else value


def env_float(name: str, default: float, minimum: float = 0.0, env: dict | None = None) -> float:
    raw = env_str(name, "", env)
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number; expected a number >= {minimum}") from None
    if value < minimum:
        raise SettingError(f"{name}={raw!r} is too small; expected a number >= {minimum}")
    return value


def env_int(name: str, default: int, minimum: int = 0, maximum: int | None = None,
            env: dict | None = None) -> int:
    raw = env_str(name, "", env)
    if raw == "":
        return default
    allowed = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not an integer; expected {allowed}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise SettingError(f"{name}={raw!r} is out of range; expected {allowed}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool, env: dict | None = None) -> bool:
    raw = env_str(name, "", env).strip().lower()
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean; expected one of "
                       f"{sorted(_TRUE | _FALSE)}")


def env_choice(name: str, default: str, allowed: tuple[str, ...], env: dict | None = None) -> str:
    value = env_str(name, default, env)
    if value not in allowed:
        raise SettingError(f"{name}={value!r} is not supported; expected one of {list(allowed)}")
    return value


def read_secret(env_name: str, file_env_name: str, default_file: str | None,
                env: dict | None = None) -> str | None:
    """A secret from its env var, else from a mounted file (path from ``file_env_name``).

    Returns None when neither is set. The value is never logged by any caller.
    """
    value = env_str(env_name, "", env).strip()
    if value:
        return value
    path = env_str(file_env_name, default_file or "", env)
    if path and Path(path).is_file():
        text = Path(path).read_text().strip()
        return text or None
    return None
