"""The annotations a WebUI pod writes through the Agones SDK (which prefixes its keys with
`agones.dev/sdk-`) are the ones the functions read: phase, cold start, GPU activity."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK_PREFIX = "agones.dev/sdk-"


def _load(module: str, source: Path):
    if str(source) not in sys.path:
        sys.path.append(str(source))
    return importlib.import_module(module)


def test_the_pod_writes_what_the_functions_read():
    pod = _load("sdfleet_webui.agones", ROOT / "images/webui")
    functions = _load("shared.agones", ROOT / "functions")
    assert SDK_PREFIX + pod.PHASE_KEY == functions.PHASE_ANNOTATION
    assert SDK_PREFIX + pod.COLD_START_KEY == functions.COLD_START_ANNOTATION
    assert SDK_PREFIX + pod.GPU_ACTIVITY_KEY == functions.GPU_ACTIVITY_ANNOTATION
