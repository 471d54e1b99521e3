"""How each framework is launched inside the pod, and how to ask it "are you up?".

All three listen on loopback only (``SDFLEET_LISTEN_HOST``, default ``127.0.0.1``): in a
WebUI pod the trusted front (``front.py``, in the sidecar) owns the game server port and
is the only way in; in a batch pod the queue agent beside it is the only client. They run
with their HTTP API on, read models from the read-only models tree (layout of
docs/contracts.md section 6), and keep their settings and outputs under
``/scratch/home/<framework>/``, the folder the user-sync sidecar mirrors.

Extensions are baked into the image at build time (images/webui/extensions/<framework>.txt,
pinned; their install.py / requirements ran then) in the folder each framework loads them
from: A1111 ``<data-dir>/extensions`` (linked to the image's ``extensions/``), SD.Next
``--extensions-dir``, ComfyUI ``custom_nodes/``. Extension installation from the browser
stays off: A1111 and SD.Next disable it whenever ``--listen`` or ``--server-name`` is given
(A1111 modules/shared_cmd_options.py; SD.Next modules/shared.py) unless
``SDFLEET_INSECURE_EXTENSION_ACCESS=true``.

Every flag used here is checked against the framework's own argument parser at the pinned
version by tests/images/test_framework_flags.py.

``health_path`` is a read-only GET that answers once the framework's API is serving.
"""

from __future__ import annotations

import os
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
    listen_host: str = "127.0.0.1"
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
    """Create the framework's data folders in scratch space (never under the models tree)."""
    home = data_dir(framework, s)
    for sub in ("outputs",) + (("user", "input", "temp") if framework == "comfyui" else ()):
        (home / sub).mkdir(parents=True, exist_ok=True)
    if framework == "automatic1111":
        # A1111 loads extensions from <data-dir>/extensions (modules/paths_internal.py) and has
        # no flag to move it: point it at the image's baked, installed extensions.
        link, baked = home / "extensions", s.frameworks_root / framework / "extensions"
        if link.is_symlink() and os.readlink(link) != str(baked):
            link.unlink()
        if not link.exists() and not link.is_symlink():
            link.symlink_to(baked)
    if framework == "comfyui":
        (s.scratch / "run").mkdir(parents=True, exist_ok=True)
        (s.scratch / "run" / "extra_model_paths.yaml").write_text(
            "sdfleet:\n"
            f"  base_path: {s.models_root}\n"
            "  checkpoints: Stable-diffusion\n  vae: VAE\n  loras: Lora\n"
            "  controlnet: ControlNet\n  embeddings: embeddings\n  upscale_models: ESRGAN\n")


def comfyui_database_url(framework: str, s: LaunchSettings) -> str:
    """SQLAlchemy URL of ComfyUI's database: a file in the person's scratch user folder."""
    return f"sqlite:///{data_dir(framework, s) / 'user' / 'comfyui.db'}"


def listen_args(framework: str, host: str) -> list[str]:
    """A1111 and SD.Next: ``--listen`` means 0.0.0.0; any other address is ``--server-name``.
    ComfyUI: ``--listen <address>`` (comfy/cli_args.py)."""
    if framework == "comfyui":
        return ["--listen", host]
    return ["--listen"] if host in ("0.0.0.0", "::") else ["--server-name", host]


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
    listen = listen_args(framework, s.listen_host)
    if framework == "automatic1111":
        # --lora-dir comes from the built-in Lora extension's preload.py and --controlnet-dir
        # from the baked sd-webui-controlnet extension's preload.py (extensions/automatic1111.txt).
        argv = [python, "launch.py", "--skip-prepare-environment", *listen, "--port", str(s.port),
                "--api", "--data-dir", str(home), "--ckpt-dir", str(models / "Stable-diffusion"),
                "--vae-dir", str(models / "VAE"), "--lora-dir", str(models / "Lora"),
                "--controlnet-dir", str(models / "ControlNet"),
                "--embeddings-dir", str(models / "embeddings"),
                "--esrgan-models-path", str(models / "ESRGAN"), "--no-download-sd-model",
                # PyTorch's scaled-dot-product attention (torch 2.1): the image installs no
                # xformers (images/webui/README.md, "Attention").
                "--opt-sdp-attention",
                # Hashing a checkpoint reads all of it from the share on every new pod (a
                # minute for SDXL); the model sync verified its SHA-256 already.
                "--no-hashing", *ckpt]
        if s.insecure_extension_access:
            argv.append("--enable-insecure-extension-access")
    elif framework == "sdnext":
        # The image ran SD.Next's installer at build time (requirements, extension
        # installers); at start --skip-git keeps it off the network and --quick skips the
        # version checks (installer.py add_args).
        argv = [python, "launch.py", "--skip-git", "--quick", *listen, "--port", str(s.port),
                "--data-dir", str(home), "--models-dir", str(models),
                "--extensions-dir", str(workdir / "extensions"), *ckpt]
        if s.insecure_extension_access:
            argv.append("--insecure")
    elif framework == "comfyui":
        argv = [python, "main.py", *listen, "--port", str(s.port),
                "--output-directory", str(home / "outputs"), "--user-directory", str(home / "user"),
                "--input-directory", str(home / "input"), "--temp-directory", str(home / "temp"),
                "--extra-model-paths-config", str(s.scratch / "run" / "extra_model_paths.yaml"),
                # Its database defaults to a folder of the read-only checkout that never
                # exists here (comfy/cli_args.py --database-url); it belongs in scratch, in
                # the user folder prepare() makes.
                "--database-url", comfyui_database_url(framework, s)]
    else:
        raise ValueError(f"framework {framework!r} is not supported; expected one of {list(FRAMEWORKS)}")
    return argv + list(s.extra_args), workdir
