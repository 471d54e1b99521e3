"""The env-name modules of the images the program starts (`images/<image>/<package>/env.py`).

Each image says, in one small module that imports nothing, the names of the variables its
programs read; the manifests here take names from it, so a name can never drift from what
the image reads (tests/contracts/test_image_seams.py checks both sides). Loaded by path: the
images' packages are not installed in the Pulumi program's environment, and loading one file
costs nothing against the `make plan` budget.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

IMAGES = Path(__file__).resolve().parents[2] / "images"


def load_env_names(image: str, package: str) -> ModuleType:
    path = IMAGES / image / package / "env.py"
    spec = importlib.util.spec_from_file_location(f"sdfleet_image_env_{package}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WEBUI = load_env_names("webui", "sdfleet_webui")
ROUTER = load_env_names("router", "sdfleet_router")
AGENT = load_env_names("queue-agent", "sdfleet_agent")
