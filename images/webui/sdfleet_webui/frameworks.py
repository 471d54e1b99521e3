"""How each framework is launched inside the pod, and how to ask it "are you up?".

All three listen on ``SDFLEET_LISTEN_HOST:7860`` (0.0.0.0 inside the pod; the pod port is
reachable only inside the VPC) with their HTTP API on, read models from the read-only
``/models`` tree (layout of docs/contracts.md section 6), and keep their settings and
outputs under ``/scratch/home/<framework>/``, the folder the user-sync sidecar mirrors.
Extension installation from the browser stays off unless
``SDFLEET_INSECURE_EXTENSION_ACCESS=true``.

``health_path`` is a read-only GET that answers once the framework's API is serving.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

FRAMEWORKS = ("automatic1111", "sdnext", "comfyui")

HEALTH_PATHS = {
    "automatic1111": "/sdapi/v1/sd-models",
    "sdnext": "/sdapi/v1/sd-models",
    "comfyui": "/system_stats",
}


@dataclass(frozen=True)
class LaunchSettings:
    frameworks_root: Path = Path("/opt/sdfleet/frameworks")
    models_root: Path = Path("/models")
    scratch: Path = Path("/scratch")
    port: int = 7860
    listen_host: str = "0.0.0.0"
    insecure_extension_access: bool = False
    extra_args: tuple[str, ...] = ()
    command_override: str | None = None  # development and tests: replaces the framework
    default_checkpoint: str | None = None  # path relative to models_root
    python: str = field(default=sys.executable)


def data_dir(framework: str, s: LaunchSettings) -> Path:
    return s.scratch / "home" / framework


def is_available(framework: str, s: LaunchSettings) -> bool:
    return framework in FRAMEWORKS and (s.command_override is not None
                                        or (s.frameworks_root / framework).is_dir())


def framework_python(framework: str, s: LaunchSettings) -> str:
    venv = s.frameworks_root / framework / "venv" / "bin" / "python"
    return str(venv) if venv.exists() else s.python


def prepare(framework: str, s: LaunchSettings) -> None:
    """Create the framework's data folders in scratch space (never under /models)."""
    home = data_dir(framework, s)
    for sub in ("outputs",) + (("user", "input", "temp") if framework == "comfyui" else ()):
        (home / sub).mkdir(parents=True, exist_ok=True)
    extensions = s.models_root / "extensions"
    link = home / "extensions"
    if framework != "comfyui" and extensions.is_dir() and not link.exists() and not link.is_symlink():
        link.symlink_to(extensions)  # read-only extensions from the shared store
    if framework == "comfyui":
        (s.scratch / "run").mkdir(parents=True, exist_ok=True)
        (s.scratch / "run" / "extra_model_paths.yaml").write_text(
            "sdfleet:\n"
            f"  base_path: {s.models_root}\n"
            "  checkpoints: Stable-diffusion\n  vae: VAE\n  loras: Lora\n"
            "  controlnet: ControlNet\n  embeddings: embeddings\n  upscale_models: ESRGAN\n"
            "  custom_nodes: extensions\n")


def launch_command(framework: str, s: LaunchSettings) -> tuple[list[str], Path]:
    """(argv, working directory) for the framework."""
    home = data_dir(framework, s)
    if s.command_override:
        argv = [part.format(framework=framework, port=s.port, data_dir=home)
                for part in shlex.split(s.command_override)]
        return argv + list(s.extra_args), s.scratch
    workdir = s.frameworks_root / framework
    python = framework_python(framework, s)
    models = s.models_root
    ckpt = ["--ckpt", str(models / s.default_checkpoint)] if s.default_checkpoint else []
    if framework == "automatic1111":
        argv = [python, "launch.py", "--skip-prepare-environment", "--listen", "--port", str(s.port),
                "--api", "--data-dir", str(home), "--ckpt-dir", str(models / "Stable-diffusion"),
                "--vae-dir", str(models / "VAE"), "--lora-dir", str(models / "Lora"),
                "--embeddings-dir", str(models / "embeddings"),
                "--esrgan-models-path", str(models / "ESRGAN"), "--no-download-sd-model", *ckpt]
        if s.insecure_extension_access:
            argv.append("--enable-insecure-extension-access")
    elif framework == "sdnext":
        argv = [python, "launch.py", "--skip-git", "--listen", "--port", str(s.port),
                "--data-dir", str(home), "--models-dir", str(models), *ckpt]
        if s.insecure_extension_access:
            argv.append("--insecure")
    elif framework == "comfyui":
        argv = [python, "main.py", "--listen", s.listen_host, "--port", str(s.port),
                "--output-directory", str(home / "outputs"), "--user-directory", str(home / "user"),
                "--input-directory", str(home / "input"), "--temp-directory", str(home / "temp"),
                "--extra-model-paths-config", str(s.scratch / "run" / "extra_model_paths.yaml")]
    else:
        raise ValueError(f"framework {framework!r} is not supported; expected one of {list(FRAMEWORKS)}")
    return argv + list(s.extra_args), workdir
