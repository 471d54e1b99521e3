"""The model list: the typed config's ``models`` (docs/contracts.md section 6), validated.

Sources of the list, merged in this order:

1. ``--models-file PATH`` (the model sync Job mounts ``/etc/sdfleet/models.json``), else the
   env ``SDFLEET_MODELS_JSON`` (the JSON text itself), else ``/etc/sdfleet/models.json``
   when it exists;
2. sdnext-dynamic's variables, for compatibility: ``CIVITAI_MODEL_VERSION_IDS``,
   ``CKPT_URLS``, ``VAE_URLS``, ``LORA_URLS``, ``CONTROLNET_URLS``, ``EXTENSION_URLS``,
   ``LOAD_SDXL_BASE``, ``LOAD_REFINER``.

Unlike sdnext-dynamic, the default checkpoint is never "whichever came last": it is the
one named by ``defaultCheckpoint`` (or ``SDFLEET_DEFAULT_CHECKPOINT`` for the legacy
variables), see ``choose_default_checkpoint``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

Kind = Literal["checkpoint", "vae", "lora", "controlnet", "embedding", "upscaler", "extension"]
Source = Literal["civitai", "url", "huggingface"]

# Folder of each kind under the models root (the layout SD.Next's --models-dir expects and
# that the supervisor passes to every framework).
KIND_FOLDERS: dict[str, str] = {
    "checkpoint": "Stable-diffusion",
    "vae": "VAE",
    "lora": "Lora",
    "controlnet": "ControlNet",
    "embedding": "embeddings",
    "upscaler": "ESRGAN",
    "extension": "extensions",
}

# sdnext-dynamic's LOAD_SDXL_BASE / LOAD_REFINER shortcuts.
SDXL_SHORTCUTS = {
    "LOAD_SDXL_BASE": {"name": "sdxl-base", "kind": "checkpoint", "source": "huggingface",
                       "repo": "stabilityai/stable-diffusion-xl-base-1.0",
                       "file": "sd_xl_base_1.0.safetensors", "revision": "main"},
    "LOAD_REFINER": {"name": "sdxl-refiner", "kind": "checkpoint", "source": "huggingface",
                     "repo": "stabilityai/stable-diffusion-xl-refiner-1.0",
                     "file": "sd_xl_refiner_1.0.safetensors", "revision": "main"},
}

LEGACY_URL_VARS = {"CKPT_URLS": "checkpoint", "VAE_URLS": "vae", "LORA_URLS": "lora",
                   "CONTROLNET_URLS": "controlnet", "EXTENSION_URLS": "extension"}

DEFAULT_MODELS_FILE = "/etc/sdfleet/models.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
HF_REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"


class ModelListError(ValueError):
    """The model list is unusable; the message names the field, the value and what is allowed."""


class ModelSpec(BaseModel):
    """One entry of the model list."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    kind: Kind | None = None
    source: Source
    civitai_version_id: int | None = Field(default=None, gt=0)
    url: str | None = None
    repo: str | None = Field(default=None, pattern=HF_REPO_PATTERN)
    file: str | None = None
    revision: str = Field(default="main", pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
    sha256: str | None = None
    required: bool = True

    @field_validator("sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("expected 64 hexadecimal characters (a SHA-256 digest) or null")
        return value.lower()

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("expected an http:// or https:// URL")
        return value

    @field_validator("file")
    @classmethod
    def _file_is_relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/") or not value.strip()):
            raise ValueError("expected a path inside the repository (no leading '/', no '..')")
        return value

    @model_validator(mode="after")
    def _source_fields(self) -> "ModelSpec":
        needed = {"civitai": ["civitai_version_id"], "url": ["url"],
                  "huggingface": ["repo", "file"]}[self.source]
        missing = [to_camel(f) for f in needed if getattr(self, f) is None]
        if missing:
            raise ValueError(f"source {self.source!r} needs {', '.join(missing)}")
        if self.kind == "extension" and (self.source != "url"
                                         or not re.fullmatch(r"[0-9a-f]{40}", self.revision)):
            raise ValueError("an extension is third-party code: it needs source 'url' (a git "
                             "URL) and 'revision' pinned to a full 40-hex commit id, got "
                             f"source {self.source!r}, revision {self.revision!r}")
        if self.kind is None and self.source != "civitai":
            raise ValueError(f"kind is required for source {self.source!r}; expected one of "
                             f"{list(KIND_FOLDERS)}")
        return self

    @property
    def source_key(self) -> str:
        """What identifies the content, independent of endpoints and tokens."""
        if self.kind == "extension":
            return f"git:{self.url}@{self.revision}"
        if self.source == "civitai":
            return f"civitai:{self.civitai_version_id}"
        if self.source == "huggingface":
            return f"huggingface:{self.repo}@{self.revision}:{self.file}"
        return f"url:{self.url}"


class ModelList(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    default_checkpoint: str | None = None
    models: list[ModelSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "ModelList":
        seen: set[str] = set()
        for spec in self.models:
            if spec.name in seen:
                raise ValueError(f"model name {spec.name!r} appears twice; names must be unique")
            seen.add(spec.name)
        if self.default_checkpoint is not None:
            match = [m for m in self.models if m.name == self.default_checkpoint]
            if not match:
                raise ValueError(f"defaultCheckpoint {self.default_checkpoint!r} names no model; "
                                 f"expected one of {sorted(seen)}")
            if match[0].kind not in ("checkpoint", None):
                raise ValueError(f"defaultCheckpoint {self.default_checkpoint!r} is a "
                                 f"{match[0].kind}, not a checkpoint")
        return self


def _describe(error: ValidationError, where: str, data: dict) -> str:
    models = data.get("models") if isinstance(data, dict) else None
    lines = []
    for item in error.errors():
        loc = ".".join(str(p) for p in item["loc"]) or "(top level)"
        path = item["loc"]
        if (len(path) >= 2 and path[0] == "models" and isinstance(path[1], int)
                and isinstance(models, list) and path[1] < len(models)
                and isinstance(models[path[1]], dict) and "name" in models[path[1]]):
            loc += f" (model {models[path[1]]['name']!r})"
        lines.append(f"{where}: {loc}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def parse_model_list(data: dict, where: str = "model list") -> ModelList:
    try:
        return ModelList.model_validate(data)
    except ValidationError as exc:
        raise ModelListError(_describe(exc, where, data)) from None


def _name_from_url(url: str) -> str:
    stem = Path(unquote(urlsplit(url).path)).name
    for suffix in (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".git"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-._")
    return stem or "model"


def legacy_entries(env: dict) -> list[dict]:
    """sdnext-dynamic's variables as model-list entries."""
    entries: list[dict] = []
    for raw in filter(None, (v.strip() for v in env.get("CIVITAI_MODEL_VERSION_IDS", "").split(","))):
        if not raw.isdigit():
            raise ModelListError(f"CIVITAI_MODEL_VERSION_IDS: {raw!r} is not a model version id; "
                                 f"expected comma-separated positive integers like 128713")
        entries.append({"name": f"civitai-{raw}", "source": "civitai", "civitaiVersionId": int(raw)})
    for var, kind in LEGACY_URL_VARS.items():
        for url in filter(None, (v.strip() for v in env.get(var, "").split(","))):
            entry = {"name": f"{kind}-{_name_from_url(url)}", "kind": kind, "source": "url", "url": url}
            if kind == "extension":
                url, _, commit = url.partition("#")
                if not re.fullmatch(r"[0-9a-f]{40}", commit):
                    raise ModelListError(f"EXTENSION_URLS: {url!r} is not pinned; expected "
                                         f"<git url>#<40-hex commit id>")
                entry.update(name=f"extension-{_name_from_url(url)}", url=url, revision=commit)
            entries.append(entry)
    for var, shortcut in SDXL_SHORTCUTS.items():
        value = env.get(var, "0").strip()
        if value not in ("", "0", "1"):
            raise ModelListError(f"{var}={value!r} is not supported; expected 0 or 1")
        if value == "1":
            entries.append(dict(shortcut))
    return entries


def load_model_list(models_file: str | None = None, env: dict | None = None) -> ModelList:
    """The merged model list (config file or JSON env, then legacy variables)."""
    env = dict(os.environ) if env is None else env
    data: dict = {"models": []}
    where = "model list"
    if models_file:
        path = Path(models_file)
        if not path.is_file():
            raise ModelListError(f"--models-file {models_file!r} does not exist or is not a file")
        text, where = path.read_text(), str(path)
    elif env.get("SDFLEET_MODELS_JSON", "").strip():
        text, where = env["SDFLEET_MODELS_JSON"], "SDFLEET_MODELS_JSON"
    elif Path(DEFAULT_MODELS_FILE).is_file():
        text, where = Path(DEFAULT_MODELS_FILE).read_text(), DEFAULT_MODELS_FILE
    else:
        text = ""
    if text:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelListError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ModelListError(f"{where}: expected a JSON object with 'models', got {type(data).__name__}")
    data = dict(data)
    data["models"] = list(data.get("models") or []) + legacy_entries(env)
    if not data.get("defaultCheckpoint") and env.get("SDFLEET_DEFAULT_CHECKPOINT"):
        data["defaultCheckpoint"] = env["SDFLEET_DEFAULT_CHECKPOINT"]
    return parse_model_list(data, where)
