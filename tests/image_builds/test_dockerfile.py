"""The WebUI Dockerfile, read with a real Dockerfile parser (the `dockerfile` package wraps
BuildKit's own Go parser), against what the programs and the Pulumi components rely on.

No container engine runs here, so the image's promises are checked where they are made:
each framework's pinned source and version, the constraints that hold torch, the
entrypoint, the paths and the env names the fleet and batch pods set.
"""

from __future__ import annotations

import re
from pathlib import Path

import dockerfile
import pytest
from sdfleet_webui import frameworks

ROOT = Path(__file__).resolve().parents[2]
WEBUI = ROOT / "images" / "webui"
COMMANDS = dockerfile.parse_file(str(WEBUI / "Dockerfile"))
SOURCES = "\n".join(p.read_text() for p in (WEBUI / "sdfleet_webui").glob("*.py"))

HEX40 = re.compile(r"[0-9a-f]{40}")
HELD = ("torch", "torchvision", "torchaudio", "xformers")

# The pins, with where each comes from (images/webui/README.md says how to move them).
PINS = {
    # AUTOMATIC1111 v1.10.1 (the tag's commit, as its own startup banner prints it: A1111
    # issue #17204 "Version: v1.10.1 / Commit hash: 82a973c0...").
    "automatic1111": ("A1111", "https://github.com/AUTOMATIC1111/stable-diffusion-webui.git",
                      "82a973c04367123ae98bd9abdf80d9eda9b910e2"),
    # vladmandic/sdnext tag 2026-07-14.
    "sdnext": ("SDNEXT", "https://github.com/vladmandic/sdnext.git",
               "e08063a963da4da03554dc8b5be93e99b65f2fa9"),
}
# ComfyUI by its release tag (docs/pinned-refs.md: no commit of it could be confirmed here).
TAGGED = {"comfyui": ("COMFYUI", "https://github.com/comfyanonymous/ComfyUI.git", "v0.3.64")}


def stages() -> dict[str, list]:
    found, current = {}, None
    for command in COMMANDS:
        if command.cmd == "FROM":
            current = command.value[2] if len(command.value) == 3 else command.value[0]
            found[current] = []
        if current is not None:
            found[current].append(command)
    return found


def env_of(commands) -> dict[str, str]:
    env = {}
    for command in commands:
        if command.cmd == "ENV":
            pairs = command.value
            for key, value in zip(pairs[::2], pairs[1::2]):
                env[key] = value.strip('"')
    return env


def args_of(commands) -> dict[str, str]:
    return dict(c.value[0].split("=", 1) for c in commands if c.cmd == "ARG" and "=" in c.value[0])


def runs_of(commands) -> list[str]:
    return [" ".join(c.value) for c in commands if c.cmd == "RUN"]


def constraints(framework: str) -> dict[str, str]:
    lines = (WEBUI / "constraints" / f"{framework}.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pins.items()}


GLOBAL_ARGS = args_of(COMMANDS[:[c.cmd for c in COMMANDS].index("FROM")])
STAGES = stages()
FRAMEWORK_NAMES = frameworks.FRAMEWORKS


def test_base_is_a_current_cuda_12_runtime_pinned_by_digest():
    image = GLOBAL_ARGS["CUDA_IMAGE"]
    match = re.fullmatch(r"nvidia/cuda:(12)\.(\d+)\.\d+-cudnn-runtime-ubuntu22\.04@sha256:[0-9a-f]{64}", image)
    assert match, image
    assert int(match.group(2)) > 1, "the nvidia/cuda 12.1 tags are marked for deletion upstream"
    assert STAGES["base"][0].value[0] == "${CUDA_IMAGE}"


def test_one_stage_per_framework_and_the_image_is_the_chosen_one():
    assert set(frameworks.FRAMEWORKS) <= set(STAGES)
    assert GLOBAL_ARGS["FRAMEWORK"] in frameworks.FRAMEWORKS
    last_from = [c for c in COMMANDS if c.cmd == "FROM"][-1]
    assert last_from.value == ("${FRAMEWORK}", "AS", "webui")
    for framework in frameworks.FRAMEWORKS:
        assert STAGES[framework][0].value[0] == "base"
        assert env_of(STAGES[framework])["SDFLEET_FRAMEWORK"] == framework
        assert [c.value for c in STAGES[framework] if c.cmd == "USER"][-1] == ("1000:1000",)
    assert [c.value for c in STAGES["webui"] if c.cmd == "USER"][-1] == ("1000:1000",)


@pytest.mark.parametrize("framework", frameworks.FRAMEWORKS)
def test_each_framework_is_cloned_at_its_pinned_ref_into_the_frameworks_root(framework):
    assert set(PINS) | set(TAGGED) == set(frameworks.FRAMEWORKS) and not set(PINS) & set(TAGGED)
    commands = STAGES[framework]
    args = args_of(commands)
    root = env_of(STAGES["base"])["SDFLEET_FRAMEWORKS_ROOT"]
    assert root == str(frameworks.LaunchSettings().frameworks_root)
    clone = next(r for r in runs_of(commands) if "git clone" in r)
    if framework in PINS:
        prefix, repo, commit = PINS[framework]
        assert args[f"{prefix}_REPO"] == repo and args[f"{prefix}_COMMIT"] == commit
        assert HEX40.fullmatch(commit)
        assert f'git clone --quiet "${prefix}_REPO" {root}/{framework}' in clone
        assert f'checkout --quiet --detach "${prefix}_COMMIT"' in clone
    else:
        prefix, repo, tag = TAGGED[framework]
        assert args[f"{prefix}_REPO"] == repo and args[f"{prefix}_REF"] == tag
        assert re.fullmatch(r"v\d+\.\d+\.\d+", tag), "a release tag, never a branch"
        assert (f'git clone --quiet --depth 1 --branch "${prefix}_REF" "${prefix}_REPO" '
                f'{root}/{framework}') in clone
        # The build log names the commit the tag stood for, to pin it in the tag's place.
        assert "rev-parse HEAD" in clone
    # frameworks.framework_python runs <root>/<framework>/venv/bin/python
    assert any('"$SDFLEET_PYTHON" -m venv venv' in r for r in runs_of(commands))
    workdirs = [c.value[0] for c in commands if c.cmd == "WORKDIR"]
    assert f"{root}/{framework}" in workdirs


@pytest.mark.parametrize("framework", frameworks.FRAMEWORKS)
def test_every_pip_run_holds_torch_with_the_frameworks_constraints(framework):
    commands = STAGES[framework]
    env = env_of(commands)
    target = env["PIP_CONSTRAINT"]
    assert target == f"/opt/sdfleet/constraints/{framework}.txt"
    copies = [c.value for c in commands if c.cmd == "COPY"]
    assert (f"constraints/{framework}.txt", target) in copies
    # ENV comes before the first RUN of the stage, so every pip in it (the framework's
    # installer and extensions' install.py included) sees it
    first_run = next(i for i, c in enumerate(commands) if c.cmd == "RUN")
    assert any(c.cmd == "ENV" and "PIP_CONSTRAINT" in c.value for c in commands[:first_run])
    pins = constraints(framework)
    assert set(HELD) <= set(pins), f"{framework}: constraints must hold {HELD}"
    assert all(re.fullmatch(r"\d+\.\d+(\.\d+)*(\.post\d+)?", v) for v in pins.values()), pins


def test_torch_installed_first_is_the_version_the_constraints_hold():
    a1111 = env_of(STAGES["automatic1111"])["TORCH_COMMAND"]
    assert f"torch=={constraints('automatic1111')['torch']}" in a1111
    assert f"torchvision=={constraints('automatic1111')['torchvision']}" in a1111
    sdnext = env_of(STAGES["sdnext"])["TORCH_COMMAND"]
    assert f"torch=={constraints('sdnext')['torch']}+cu128" in sdnext
    comfy = next(r for r in runs_of(STAGES["comfyui"]) if "requirements.txt" in r)
    held = constraints("comfyui")
    for package in ("torch", "torchvision", "torchaudio"):
        assert f"{package}=={held[package]}" in comfy
    # torch first, then ComfyUI's requirements (torch unpinned there) under the constraints
    assert comfy.index("torch==") < comfy.index("pip install -r requirements.txt")


def test_comfyui_installs_what_it_imports_without_listing_and_proves_it_imports():
    """ComfyUI's app/frontend_management.py imports requests, which its requirements.txt does
    not list; without it ComfyUI exits at start."""
    commands = STAGES["comfyui"]
    assert ("additions/comfyui.txt", "/opt/sdfleet/additions.txt") in [c.value for c in commands
                                                                        if c.cmd == "COPY"]
    additions = {}
    for line in (WEBUI / "additions/comfyui.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            additions[name] = version
    assert "requests" in additions and all(re.fullmatch(r"\d+(\.\d+)+", v) for v in additions.values())
    install = next(r for r in runs_of(commands) if "requirements.txt" in r)
    # Installed in the same pip run as ComfyUI's requirements (one resolution, constraints on).
    assert "pip install -r requirements.txt -r /opt/sdfleet/additions.txt" in install
    check = install[install.index("venv/bin/python -c"):]
    assert "import requests, app.frontend_management" in check.split("&&")[0]


def test_a1111_clones_stable_diffusion_from_the_maintained_fork():
    env = env_of(STAGES["automatic1111"])
    assert env["STABLE_DIFFUSION_REPO"] == "https://github.com/w-e-w/stablediffusion.git"
    assert "Stability-AI" not in env["STABLE_DIFFUSION_REPO"]
    assert HEX40.fullmatch(env["STABLE_DIFFUSION_COMMIT_HASH"])
    # its installer (which reads the variable) runs at build time; the pod then skips it
    assert any("launch.py --skip-torch-cuda-test --exit" in r for r in runs_of(STAGES["automatic1111"]))


def test_sdnext_fetches_its_submodules_and_runs_its_installer():
    runs = runs_of(STAGES["sdnext"])
    assert any("submodule update --init --recursive" in r for r in runs)
    assert any("launch.py --use-cuda --test" in r for r in runs)
    # --skip-git makes installer.py's check_transformers return early: transformers and
    # huggingface_hub then come at versions that do not import together
    assert not any("launch.py" in r and "--skip-git" in r for r in runs)


def extension_list(framework: str) -> list[tuple[str, str, str]]:
    lines = (WEBUI / "extensions" / f"{framework}.txt").read_text().splitlines()
    return [tuple(line.split()) for line in lines if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("framework,folder", [("automatic1111", "extensions"),
                                              ("sdnext", "extensions"),
                                              ("comfyui", "custom_nodes")])
def test_extensions_are_pinned_and_installed_where_the_framework_loads_them(framework, folder):
    for entry in extension_list(framework):
        name, url, commit = entry
        assert url.startswith("https://") and HEX40.fullmatch(commit), entry
    assert ("extensions/" + framework + ".txt", "/opt/sdfleet/extensions.txt") in \
        [c.value for c in STAGES[framework] if c.cmd == "COPY"]
    assert any(f"install_extensions.sh /opt/sdfleet/extensions.txt {folder}" in r
               for r in runs_of(STAGES[framework]))
    script = (WEBUI / "install_extensions.sh").read_text()
    assert "checkout --quiet -B sdfleet-pinned" in script and "40" in script


def test_a1111_has_the_extension_that_defines_controlnet_dir():
    argv, _ = frameworks.launch_command("automatic1111", frameworks.LaunchSettings())
    assert "--controlnet-dir" in argv
    assert "sd-webui-controlnet" in [name for name, _, _ in extension_list("automatic1111")]


def test_baked_models_use_secret_mounts_never_build_args():
    run = next(c for c in STAGES["webui"] if c.cmd == "RUN")
    assert "--mount=type=secret,id=hf_token,required=false" in run.flags
    assert "--mount=type=secret,id=civitai_token,required=false" in run.flags
    text = " ".join(run.value)
    assert "HF_TOKEN_FILE=/run/secrets/hf_token" in text and "sdfleet_webui.fetch" in text
    every_arg = [c.value[0].split("=")[0] for c in COMMANDS if c.cmd == "ARG"]
    assert not [a for a in every_arg if "TOKEN" in a or "SECRET" in a]
    # the supervisor finds them where the image puts them
    assert '"$SDFLEET_BAKED_MODELS"' in text
    assert env_of(STAGES["base"])["SDFLEET_BAKED_MODELS"] == "/opt/sdfleet/baked-models"
    assert '"SDFLEET_BAKED_MODELS", "/opt/sdfleet/baked-models"' in SOURCES


def test_entrypoint_and_programs_the_pods_start():
    from components.k8s import fleet
    entry = next(c for c in STAGES["base"] if c.cmd == "ENTRYPOINT").value
    assert entry == (fleet.IMAGE_PYTHON, "-m")
    assert next(c for c in STAGES["base"] if c.cmd == "CMD").value == ("sdfleet_webui.supervisor",)
    env = env_of(STAGES["base"])
    assert env["PATH"].startswith(str(Path(fleet.IMAGE_PYTHON).parent) + ":")  # `python -m ...` too
    assert env["PYTHONPATH"] == "/opt/sdfleet/app"
    for framework in FRAMEWORK_NAMES:
        assert ("sdfleet_webui", "/opt/sdfleet/app/sdfleet_webui") in [
            c.value for c in STAGES[framework] if c.cmd == "COPY"], framework
    for component in ("fleet.py", "batch.py"):
        text = (ROOT / "components" / "k8s" / component).read_text()
        for module in set(re.findall(r"sdfleet_webui\.(\w+)", text)):
            assert (WEBUI / "sdfleet_webui" / f"{module}.py").is_file(), (component, module)
    requirements = (WEBUI / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in pins)


@pytest.mark.parametrize("component", ["fleet.py", "batch.py"])
def test_every_env_name_the_pods_set_is_one_the_image_reads(component):
    text = (ROOT / "components" / "k8s" / component).read_text()
    names = set(re.findall(r'"name": "(SDFLEET_[A-Z0-9_]+)"', text))
    names |= set(re.findall(r'"(SDFLEET_[A-Z0-9_]+)": ', text))
    unread = sorted(n for n in names if f'"{n}"' not in SOURCES)
    assert not unread, f"{component} sets {unread}, which no program of the image reads"


def fleet_pod() -> dict:
    from components.config import FleetConfig, GpuPoolConfig, WebuiConfig
    from components.k8s import fleet
    pool = GpuPoolConfig(name="l4", machine_type="g2-standard-8", accelerator="nvidia-l4")
    return fleet.webui_pod_spec(FleetConfig(), pool, WebuiConfig(framework="comfyui"),
                                "webui-comfyui@sha256:" + "0" * 64, "claim")


def container_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def test_fleet_pod_wiring_is_what_the_programs_accept():
    """The fleet's container env, fed to the programs' own settings parsers: the WebUI on
    loopback on another port, the front (in the trusted sidecar) on the game server port
    in front of it, and one start budget for the startup probe and the supervisor."""
    from sdfleet_webui.front import FrontConfig
    from sdfleet_webui.supervisor import SupervisorConfig
    from sdfleet_webui.usersync import SyncConfig

    from components.k8s import fleet

    pod = fleet_pod()
    webui = next(c for c in pod["containers"] if c["name"] == "webui")
    sidecar = next(c for c in pod["containers"] if c["name"] == "user-sync")
    supervisor = SupervisorConfig.from_env(container_env(webui))
    front = FrontConfig.from_env(container_env(sidecar))
    sync = SyncConfig.from_env(container_env(sidecar))
    assert supervisor.framework == "comfyui"
    assert supervisor.launch.listen_host == "127.0.0.1"
    assert front.port == fleet.WEBUI_PORT and front.host == "0.0.0.0"
    assert front.upstream == f"http://127.0.0.1:{supervisor.launch.port}"
    assert supervisor.launch.port != fleet.WEBUI_PORT
    assert "ports" not in webui  # nothing of the WebUI container is a pod port
    assert sidecar["ports"] == [{"name": "webui", "containerPort": fleet.WEBUI_PORT}]
    assert sidecar["args"] == ["sdfleet_webui.trusted"]
    assert str(sync.users_root) == "/users" and str(sync.scratch_home) == "/scratch/home"
    # an image without baked models reads the shared store; a baked one its own models
    assert str(supervisor.launch.models_root) == "/models" and str(supervisor.launch.scratch) == "/scratch"
    assert "SDFLEET_MODELS_ROOT" not in container_env(webui)
    startup = webui["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] == supervisor.policy.start_timeout
    # no supervisor secret anywhere in the pod
    assert all("token" not in m["mountPath"] for c in pod["containers"] for m in c["volumeMounts"])
    assert not [v for v in pod["volumes"] if "secret" in v]
    exposed = next(c for c in STAGES["base"] if c.cmd == "EXPOSE").value
    assert exposed == (str(fleet.WEBUI_PORT),)


def test_a_change_to_the_programs_never_rebuilds_a_framework_install():
    """Layers in the order they change: the programs (sdfleet_webui/, edited most) come after
    every step that installs the framework, so a one-line change rebuilds one small layer."""
    assert not [c for c in STAGES["base"] if c.cmd == "COPY" and c.value[0] == "sdfleet_webui"]
    for framework in FRAMEWORK_NAMES:
        commands = STAGES[framework]
        copy_at = next(i for i, c in enumerate(commands)
                       if c.cmd == "COPY" and c.value[0] == "sdfleet_webui")
        installs = [i for i, c in enumerate(commands) if c.cmd == "RUN"
                    and re.search(r"pip install|launch\.py|install_extensions|bake_hub_files", " ".join(c.value))]
        assert installs and max(installs) < copy_at, (framework, installs, copy_at)
        # and nothing after it but its permissions and the stage's user
        assert [c.cmd for c in commands[copy_at + 1:]] == ["RUN", "WORKDIR", "USER"], framework
