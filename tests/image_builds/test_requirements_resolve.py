"""Every deployable's pins install on the Python its image or runtime runs.

The development venv is one Python (3.11) for everything; the WebUI image runs 3.10, so a pin
that needs 3.11 passed every test and broke every WebUI build. Here each requirements file
is resolved by pip, with the deployable's own interpreter (from pyenv or PATH), against the
package index (`pip install --dry-run --report`): a `Requires-Python` mismatch or a conflict
fails. Each Python version is named once, where the image or runtime names it, and read here.

Replays are cached by their inputs (interpreter version, pip version, file contents) under
~/.cache/sdfleet/replays, so an unchanged file is not resolved again.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dockerfile
import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sdfleet" / "replays"


def dockerfile_arg(path: str, name: str) -> str:
    for ins in dockerfile.parse_file(str(ROOT / path)):
        if ins.cmd.lower() == "arg" and ins.value[0].startswith(name + "="):
            return ins.value[0].split("=", 1)[1]
    raise LookupError(f"{path}: no ARG {name}=")


def python_of_base_image(path: str) -> str:
    first = next(i for i in dockerfile.parse_file(str(ROOT / path)) if i.cmd.lower() == "from")
    base = first.value[0]
    if arg := re.fullmatch(r"\$\{(\w+)\}", base):
        base = dockerfile_arg(path, arg.group(1))
    match = re.fullmatch(r"python:(\d+\.\d+)(?:\.\d+)?(?:-.*)?(?:@sha256:[0-9a-f]{64})?", base)
    if not match:
        raise LookupError(f"{path}: FROM {base} is not an official python image")
    return match.group(1)


def module_constant(path: str, name: str) -> str:
    tree = ast.parse((ROOT / path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{path}: no {name} = ...")


def runtime_python(runtime: str) -> str:
    """`python311` (Cloud Functions) or `python3.11` (Lambda) -> `3.11`."""
    match = re.fullmatch(r"python(3)\.?(\d+)", runtime)
    if not match:
        raise LookupError(f"runtime {runtime!r} is not a Python runtime")
    return f"{match.group(1)}.{match.group(2)}"


@dataclass(frozen=True)
class Deployable:
    name: str
    requirements: str
    python: str


DEPLOYABLES = [
    Deployable("webui", "images/webui/requirements.txt",
               dockerfile_arg("images/webui/Dockerfile", "PYTHON_VERSION")),
    # What the ComfyUI stage installs beside ComfyUI's own requirements, on the image's Python.
    Deployable("comfyui-additions", "images/webui/additions/comfyui.txt",
               dockerfile_arg("images/webui/Dockerfile", "PYTHON_VERSION")),
    Deployable("router-verifier", "images/router/requirements.txt",
               dockerfile_arg("images/router/Dockerfile", "PYTHON_VERSION")),
    Deployable("queue-agent", "images/queue-agent/requirements.txt",
               python_of_base_image("images/queue-agent/Dockerfile")),
    Deployable("functions", "functions/requirements.txt",
               runtime_python(module_constant("components/gcp/functions.py", "RUNTIME"))),
    Deployable("submit", "functions/submit/requirements.txt",
               runtime_python(module_constant("components/aws/api.py", "LAMBDA_RUNTIME"))),
]


def interpreter(version: str) -> str:
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    for folder in sorted(pyenv.glob(f"{version}.*"), reverse=True):
        candidate = folder / "bin" / f"python{version}"
        if candidate.is_file():
            return str(candidate)
    # pyenv's shims answer only for a selected version: skip them
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if "/shims" not in p)
    found = shutil.which(f"python{version}", path=path)
    if found:
        return found
    raise LookupError(f"no python{version} on PATH or under {pyenv}: install it "
                      f"(`pyenv install {version}`) to check the pins that run on it")


def resolve(python: str, requirements_text: str) -> dict:
    """pip's resolution of a requirements text on `python` (cached by its inputs)."""
    pip_version = subprocess.run([python, "-m", "pip", "--version"], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    version = subprocess.run([python, "-c", "import sys; print(sys.version.split()[0])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    key = hashlib.sha256(json.dumps([version, pip_version, requirements_text]).encode()).hexdigest()
    cached = CACHE / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    folder = CACHE / "work" / key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "requirements.txt").write_text(requirements_text)
    # --isolated: no pip config or PIP_* variables of this machine (local indexes, caps).
    proc = subprocess.run(
        [python, "-m", "pip", "--isolated", "install", "--dry-run", "--ignore-installed",
         "--quiet", "--report", str(folder / "report.json"), "-r", str(folder / "requirements.txt")],
        capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        report = json.loads((folder / "report.json").read_text())
        result = {"ok": True, "python": version, "resolved": {
            i["metadata"]["name"].lower(): i["metadata"]["version"] for i in report["install"]}}
    elif "No matching distribution" in proc.stderr or "ResolutionImpossible" in proc.stderr \
            or "conflict" in proc.stderr.lower():
        result = {"ok": False, "python": version,
                  "error": [line for line in proc.stderr.splitlines() if "ERROR" in line][-3:]}
    else:   # the index could not be reached: not a verdict, not cached
        pytest.fail(f"pip could not resolve (no verdict): {proc.stderr[-2000:]}")
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(result, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    return result


def pins(path: str) -> dict[str, str]:
    out = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"\[.*\]", "", name).strip().lower().replace("_", "-")] = version.strip()
    return out


@pytest.mark.parametrize("deployable", DEPLOYABLES, ids=[d.name for d in DEPLOYABLES])
def test_every_pin_installs_on_the_deployables_own_python(deployable):
    result = resolve(interpreter(deployable.python),
                     (ROOT / deployable.requirements).read_text())
    assert result["python"].startswith(deployable.python + ".")
    assert result["ok"], f"{deployable.requirements} on Python {deployable.python}: {result['error']}"
    resolved = {k.replace("_", "-"): v for k, v in result["resolved"].items()}
    for name, version in pins(deployable.requirements).items():
        assert resolved.get(name) == version, (name, version, resolved.get(name))


def test_the_webui_image_runs_python_3_10_and_the_replay_refuses_a_3_11_only_pin():
    """The fault this guards: pydantic-settings 2.16 requires Python >= 3.11."""
    webui = next(d for d in DEPLOYABLES if d.name == "webui")
    assert webui.python == "3.10"
    result = resolve(interpreter("3.10"), "pydantic-settings==2.16.3\n")
    assert not result["ok"]


# What sd-webui-controlnet 1.1.455's install.py installs one by one (its requirements), after
# A1111's own requirements; with PIP_CONSTRAINT in force each must stay at the held version.
CONTROLNET_INSTALLS = ("mediapipe", "svglib", "fvcore", "addict", "yapf", "albumentations",
                       "matplotlib", "opencv-python", "opencv-contrib-python", "scikit-image",
                       "numpy", "protobuf", "pip", "setuptools", "wheel")


def test_a1111_constraints_hold_numpy_1_through_controlnets_installs():
    """Unheld, ControlNet's installs brought numpy 2 and scikit-image 0.21 failed at import."""
    held = (ROOT / "images/webui/constraints/automatic1111.txt").read_text()
    text = held + "\n" + "\n".join(CONTROLNET_INSTALLS) + "\n"
    webui = next(d for d in DEPLOYABLES if d.name == "webui")
    result = resolve(interpreter(webui.python), text)
    assert result["ok"], result.get("error")
    resolved = {k.replace("_", "-"): v for k, v in result["resolved"].items()}
    assert resolved["numpy"].startswith("1.") and resolved["protobuf"].startswith("3.")
    for name, version in pins("images/webui/constraints/automatic1111.txt").items():
        assert resolved.get(name) == version, (name, version, resolved.get(name))
