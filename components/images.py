"""The container images the stack runs, cloud-neutral: where each is built from, and a hash of
its build inputs (an unchanged image folder gives the same hash, so it is never rebuilt and its
immutable tag never moves).

Each cloud layer builds these (Cloud Build on GCP, CodeBuild on AWS) or takes
`images.prebuilt` references from the config.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES_DIR = ROOT / "images"
# Build outputs and caches that never belong to an image's content.
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}


@dataclass(frozen=True)
class ImageSource:
    context: Path
    dockerfile: Path
    build_args: dict[str, str] = field(default_factory=dict)


def _webui(framework: str) -> ImageSource:
    folder = IMAGES_DIR / "webui"
    return ImageSource(folder, folder / "Dockerfile", {"FRAMEWORK": framework})


IMAGES: dict[str, ImageSource] = {
    "router": ImageSource(IMAGES_DIR / "router", IMAGES_DIR / "router" / "Dockerfile"),
    "webui-automatic1111": _webui("automatic1111"),
    "webui-sdnext": _webui("sdnext"),
    "webui-comfyui": _webui("comfyui"),
    "queue-agent": ImageSource(IMAGES_DIR / "queue-agent",
                               IMAGES_DIR / "queue-agent" / "Dockerfile"),
}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not _IGNORED_PARTS.intersection(p.parts)
                  and p.suffix != ".pyc")


def content_hash(name: str) -> str:
    """SHA-256 (hex) of an image's build inputs: every file of its context (path and bytes),
    its Dockerfile and its build arguments."""
    source = IMAGES[name]
    digest = hashlib.sha256()
    for path in _files(source.context) + [source.dockerfile]:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for key, value in sorted(source.build_args.items()):
        digest.update(f"ARG {key}={value}\0".encode())
    return digest.hexdigest()
