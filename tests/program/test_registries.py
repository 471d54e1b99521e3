"""One registry per choice: an entry added to the accelerator registry reaches every
consumer (the config's accepted values, the pool rule and its message, the cost estimate),
and the policy pack, a separately deployed program, agrees with it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import yaml

from components.registries.accelerators import (
    ACCELERATOR_OPTIMIZED_FAMILIES,
    GCE_ACCELERATORS,
    brings_its_gpus,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_new_accelerator_is_one_registry_entry_away_from_every_consumer(tmp_path):
    probe = textwrap.dedent("""
        import json, sys
        from components.registries import accelerators
        accelerators.register(accelerators.GceAccelerator("nvidia-fake-x1", "Fake X1", ("g2",), 48))
        from components.config import ConfigError, parse_platform
        from tools.cost.gcp import brings_its_gpus
        from tools.preview import read_stack_config
        raw = read_stack_config("dev")["sdfleet:platform"]
        out = {}
        raw["gpuPools"][0]["accelerator"] = "nvidia-fake-x1"
        parse_platform(raw, stack="dev", gcp_project="p", gcp_region="us-central1")
        out["accepted"] = True
        raw["gpuPools"][0]["machineType"] = "n1-standard-8"
        try:
            parse_platform(raw, stack="dev", gcp_project="p", gcp_region="us-central1")
        except ConfigError as exc:
            out["refused"] = exc.lines
        from tools.config_docs import render
        out["documented"] = "nvidia-fake-x1" in render()
        out["cost_counts_its_gpu"] = brings_its_gpus("g2-standard-8")
        print(json.dumps(out))
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["accepted"] is True and out["documented"] is True and out["cost_counts_its_gpu"]
    (line,) = [line for line in out["refused"] if "gpuPools[0].accelerator" in line]
    assert "Fake X1 needs g2" in line and "'n1-standard-8'" in line


def test_every_attached_accelerator_has_a_price_and_the_policy_pack_agrees():
    """A GPU attached to an N1 machine is priced per GPU-hour; an accelerator-optimized
    machine type carries its GPUs in its own price (an unlisted one the estimate names as
    unpriced, never guesses)."""
    prices = yaml.safe_load((ROOT / "tools" / "prices.yaml").read_text())["gcp"]["us-central1"]
    for name, accelerator in GCE_ACCELERATORS.items():
        if not set(accelerator.machine_families) <= set(ACCELERATOR_OPTIMIZED_FAMILIES):
            assert name in prices["accelerators"], f"{name}: no perGpuHour in tools/prices.yaml"
    for machine, price in prices["machineTypes"].items():
        assert bool(price.get("gpusIncluded")) == brings_its_gpus(machine), machine
    sys.path.insert(0, str(ROOT / "policy"))
    try:
        from sdfleet_policies.gpu import GCE_GPU_FAMILIES
    finally:
        sys.path.remove(str(ROOT / "policy"))
    assert tuple(GCE_GPU_FAMILIES) == ACCELERATOR_OPTIMIZED_FAMILIES


def test_the_programs_built_apart_list_the_registrys_frameworks():
    """The WebUI image and the queue agent are built from their own folders and keep their
    own list; each must equal the registry's."""
    import ast

    from components.registries.frameworks import BATCH_FRAMEWORKS, FRAMEWORKS, WEBUI_FRAMEWORKS

    def constant(path: str, name: str):
        for node in ast.parse((ROOT / path).read_text()).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                return ast.literal_eval(node.value)
        raise LookupError(f"{path}: no {name}")

    image = "images/webui/sdfleet_webui/frameworks.py"
    assert tuple(constant(image, "FRAMEWORKS")) == WEBUI_FRAMEWORKS
    assert set(constant(image, "HEALTH_PATHS")) == set(WEBUI_FRAMEWORKS)
    agent = "images/queue-agent/sdfleet_agent/settings.py"
    assert set(constant(agent, "HEALTH_PATHS")) == set(BATCH_FRAMEWORKS)
    text = (ROOT / agent).read_text()
    assert f"Literal[{', '.join(repr(n).replace(chr(39), chr(34)) for n in BATCH_FRAMEWORKS)}]" in text
    dockerfile = (ROOT / "images" / "webui" / "Dockerfile").read_text()
    for name in FRAMEWORKS:
        assert f"FROM base AS {name}\n" in dockerfile, name
    # every Dockerfile framework stage is a registered framework
    import re
    assert set(re.findall(r"^FROM base AS (\w+)$", dockerfile, re.M)) == set(FRAMEWORKS)
