"""`ConfigError` and how a pydantic validation error becomes one line per problem, naming the
key path (`sdfleet:platform.gpuPools[0].accelerator`), the bad value and what is allowed."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from components.config.fields import CONFIG_KEY, SECRET_KEYS


class ConfigError(Exception):
    """Every problem of a stack config, one line each; raised before any resource exists."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        super().__init__("invalid stack config:\n" + "\n".join(f"  {line}" for line in lines))


def _path(prefix: str, loc: tuple) -> str:
    out = prefix
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _section_for(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The model class under `root` that holds the last key of `loc` (to list the keys it allows)."""
    model: Any = root
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = next((f for n, f in model.model_fields.items()
                      if f.alias == part or n == part), None)
        if field is None:
            return None
        model = _innermost_model(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _innermost_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _innermost_model(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _lines_from_validation_error(exc: ValidationError, root: type[BaseModel]) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = _path(CONFIG_KEY, loc)
        if err["type"] == "extra_forbidden":
            section = _section_for(loc, root)
            allowed = sorted(f.alias or n for n, f in section.model_fields.items()) if section else []
            hint = f"; secrets go in their own keys ({', '.join('sdfleet:' + k for k in SECRET_KEYS)})" \
                if any(w in str(loc[-1]).lower() for w in ("token", "password", "secret", "key")) else ""
            lines.append(f"{path}: unknown key; allowed keys here: {', '.join(allowed)}{hint}")
            continue
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if err["type"] == "missing" else f" (got {value!r})"
        lines.append(f"{path}: {msg}{shown}")
    return lines
