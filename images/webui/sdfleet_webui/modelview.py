"""A profile's models: a folder in the pod's scratch that shows only the models a profile
offers (the platform sets their names in SDFLEET_MODELS_ONLY), as links to the verified
files of the shared store. Every kind's folder exists, empty or not (frameworks make or
expect them at start), and nothing is copied: the links point at the read-only share."""

from __future__ import annotations

import shutil
from pathlib import Path

from .manifest import Manifest
from .modellist import KIND_FOLDERS


def model_view(root: Path, only: list[str], view: Path) -> tuple[Path, str | None, list[str]]:
    """(the view's root, its default checkpoint path relative to it, names not on the
    store). The store's default checkpoint stays the default when the profile offers it;
    otherwise the first checkpoint the profile names."""
    manifest = Manifest(root)
    shutil.rmtree(view, ignore_errors=True)
    for folder in KIND_FOLDERS.values():
        (view / folder).mkdir(parents=True, exist_ok=True)
    missing, checkpoints = [], []
    for name in only:
        entry = manifest.entry(name)
        if entry is None:
            missing.append(name)
            continue
        link = view / entry.path
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(root / entry.path)
        if entry.kind == "checkpoint":
            checkpoints.append(entry.path)
    default = manifest.default_checkpoint_path()
    if default not in checkpoints:
        default = checkpoints[0] if checkpoints else None
    return view, default, missing
