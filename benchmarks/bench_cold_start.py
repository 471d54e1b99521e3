"""Cold-start pieces that can be measured here (docs/architecture.md, "Cold start").

- `image.rebuilt_layers_share`: the share of the WebUI image's layers (base + framework stage +
  final stage) a one-line change in images/webui/sdfleet_webui/ rebuilds, worst framework,
  read from the Dockerfile as BuildKit's cache sees it (a changed COPY source rebuilds that
  layer and every one after it, in its stage and in the stages built FROM it). Baseline: the
  Dockerfile before its layers were ordered by how often they change (git 418df0d^).
- `image.rebuilt_install_layers`: how many of those rebuilt layers install something (0).
- `supervisor.ready_to_first_image_s`: from the framework's API answering to the warm-up image
  that makes a pod Ready, with the production intervals, on a stand-in framework that
  generates at once (tests/images/stub_webui.py): what the supervisor itself adds, median of 3;
  `supervisor.start_to_ready_s`: from starting that framework to Ready.
"""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dockerfile

from benchmarks.report import emit

ROOT = Path(__file__).resolve().parents[1]
WEBUI = ROOT / "images" / "webui"
PROGRAMS = "sdfleet_webui"
BEFORE_ORDERING = "418df0d^"
FRAMEWORKS = ("automatic1111", "sdnext", "comfyui")
INSTALL = re.compile(r"pip install|launch\.py|install_extensions|bake_hub_files|git clone|apt-get")


def _stages(commands) -> dict[str, tuple[str, list]]:
    stages, current = {}, None
    for c in commands:
        if c.cmd.upper() == "FROM":
            words = list(c.value)
            name = words[words.index(next(w for w in words if w.upper() == "AS")) + 1] \
                if any(w.upper() == "AS" for w in words) else f"stage{len(stages)}"
            stages[name] = (words[0], [])
            current = name
        elif current is not None:
            stages[current][1].append(c)
    return stages


def rebuilt_share(text: str, framework: str) -> tuple[int, int, int]:
    """(layers rebuilt, layers, install layers rebuilt) of the final image for `framework`
    after a change to the programs' folder."""
    stages = _stages(dockerfile.parse_string(text))
    final = next(reversed(stages))
    chain, name = [], final
    while name in stages:
        chain.append(name)
        parent = stages[name][0]
        name = framework if parent == "${FRAMEWORK}" else parent
    layers = rebuilt = installs = 0
    dirty = False
    for stage in reversed(chain):
        for c in stages[stage][1]:
            if c.cmd.upper() not in ("RUN", "COPY", "ADD"):
                continue
            sources = [v for v in c.value[:-1] if not v.startswith("--")] if c.cmd.upper() != "RUN" else []
            dirty = dirty or any(s.rstrip("/").split("/")[0] == PROGRAMS for s in sources)
            layers += 1
            rebuilt += dirty
            installs += dirty and c.cmd.upper() == "RUN" and bool(INSTALL.search(" ".join(c.value)))
    return rebuilt, layers, installs


def _worst(text: str) -> float:
    return max(r / n for r, n, _ in (rebuilt_share(text, fw) for fw in FRAMEWORKS))


def bench_layers() -> None:
    text = (WEBUI / "Dockerfile").read_text()
    now = _worst(text)
    emit("image.rebuilt_install_layers", max(i for _, _, i in (rebuilt_share(text, fw) for fw in FRAMEWORKS)),
         "layers", "0: a program change reruns no pip, installer, clone or Hub download")
    try:
        before_text = subprocess.run(["git", "show", f"{BEFORE_ORDERING}:images/webui/Dockerfile"],
                                     cwd=ROOT, capture_output=True, text=True, check=True).stdout
        before = _worst(before_text)
    except (subprocess.CalledProcessError, FileNotFoundError):
        before = None          # a shallow clone has no history
    emit("image.rebuilt_layers_share", round(now, 3), "ratio",
         "only the layers after the last install (the programs' copy, its chmod, the model bake step)",
         baseline=None if before is None else round(before, 3),
         ratio=None if not before else round(now / before, 3))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_start(tmp: Path) -> tuple[float, float]:
    plan = tmp / "plan.json"
    plan.write_text(json.dumps([{}]))
    (tmp / "requests.log").touch()
    webui_port, api_port = _free_port(), _free_port()
    stub = ROOT / "tests" / "images" / "stub_webui.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SDFLEET_", "AGONES_"))}
    env.update(PYTHONPATH=str(WEBUI), PYTHONUNBUFFERED="1",
               SDFLEET_WEBUI_COMMAND=(f"{sys.executable} {stub} --port {{port}} --framework {{framework}} "
                                      f"--plan {plan} --record {tmp / 'requests.log'}"),
               SDFLEET_WEBUI_PORT=str(webui_port), SDFLEET_SUPERVISOR_PORT=str(api_port),
               SDFLEET_SCRATCH=str(tmp / "scratch"), SDFLEET_MODELS_ROOT=str(tmp / "models"),
               SDFLEET_AGONES="false")
    proc = subprocess.Popen([sys.executable, "-m", "sdfleet_webui.supervisor"], cwd=tmp, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/info", timeout=2) as answer:
                    steps = json.load(answer).get("coldStart") or {}
                if "firstImage" in steps:
                    return (steps["firstImage"] - steps["apiAnswered"],
                            steps["firstImage"] - steps["webuiStarted"])
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the supervisor never reached its first image")
    finally:
        proc.terminate()
        proc.wait(30)


def bench_ready_to_first_image() -> None:
    samples = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            samples.append(_one_start(Path(tmp)))
    emit("supervisor.ready_to_first_image_s", round(statistics.median(s[0] for s in samples), 3), "s",
         "what the supervisor adds between an answering API and Ready (< 0.5 s)")
    emit("supervisor.start_to_ready_s", round(statistics.median(s[1] for s in samples), 3), "s",
         "a framework that starts at once is Ready within 1 s (detection every 0.5 s while starting)")


if __name__ == "__main__":
    bench_layers()
    bench_ready_to_first_image()
