"""A profile's model list in the pod: the supervisor shows the framework only the models the
profile offers (SDFLEET_MODELS_ONLY), linked from the shared store, every kind's folder there."""

from __future__ import annotations

from pathlib import Path

from sdfleet_webui import env
from sdfleet_webui.manifest import Manifest, VerifiedFile
from sdfleet_webui.modellist import KIND_FOLDERS
from sdfleet_webui.modelview import model_view
from sdfleet_webui.supervisor import SupervisorConfig


def _store(root: Path) -> Manifest:
    manifest = Manifest(root)
    for name, kind, path in (("sd15", "checkpoint", "Stable-diffusion/sd15.safetensors"),
                             ("sdxl", "checkpoint", "Stable-diffusion/sdxl.safetensors"),
                             ("vae", "vae", "VAE/vae.safetensors")):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(name.encode())
        manifest.record(VerifiedFile(name, kind, path, len(name), "0" * 64, "test"))
    manifest.set_default_checkpoint("sdxl", "Stable-diffusion/sdxl.safetensors")
    return manifest


def test_only_the_profiles_models_are_shown_and_every_kind_folder_exists(tmp_path):
    root = tmp_path / "models"
    _store(root)
    view, default, missing = model_view(root, ["sd15", "vae", "not-synced"], tmp_path / "view")
    shown = sorted(p.relative_to(view).as_posix() for p in view.rglob("*") if p.is_symlink())
    assert shown == ["Stable-diffusion/sd15.safetensors", "VAE/vae.safetensors"]
    assert (view / "Stable-diffusion/sd15.safetensors").read_bytes() == b"sd15"
    assert all((view / folder).is_dir() for folder in KIND_FOLDERS.values())
    assert default == "Stable-diffusion/sd15.safetensors"   # the store's default is not offered
    assert missing == ["not-synced"]
    again, default2, _ = model_view(root, ["sdxl"], tmp_path / "view")   # a restart rebuilds it
    assert default2 == "Stable-diffusion/sdxl.safetensors"
    assert not (again / "Stable-diffusion/sd15.safetensors").exists()


def test_the_supervisor_starts_the_framework_on_the_view(tmp_path):
    root = tmp_path / "models"
    _store(root)
    config = SupervisorConfig.from_env({env.MODELS_ROOT: str(root), env.SCRATCH: str(tmp_path / "s"),
                                        env.MODELS_ONLY: "sd15"})
    assert config.launch.models_root == tmp_path / "s" / "models-view"
    assert config.launch.default_checkpoint == "Stable-diffusion/sd15.safetensors"
    plain = SupervisorConfig.from_env({env.MODELS_ROOT: str(root), env.SCRATCH: str(tmp_path / "s")})
    assert plain.launch.models_root == root
    assert plain.launch.default_checkpoint == "Stable-diffusion/sdxl.safetensors"
