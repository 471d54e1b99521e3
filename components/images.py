"""The container images sdfleet runs: one name each, its build context and build args.

Cloud-neutral (no provider imports): the GCP platform builds these with Cloud Build, the AWS
variant with its own builder, and `images.prebuilt` in the stack config replaces any of them
with a reference the deployer brings. The content hash is what a build is keyed by: it changes
when any file of the context, the Dockerfile's name or a build arg changes, and only then, so
an unchanged image is never rebuilt.

Base images: every Dockerfile takes its base through a global `ARG <NAME>_IMAGE=<reference>`
(`FROM ${<NAME>_IMAGE}`), whose default is the Docker Hub reference a local build pulls. The
cloud builds pass the same reference through the cloud's own Docker Hub mirror instead
(`mirrored_bases`): builders share IP addresses, and Docker Hub answers their anonymous pulls
with `429 toomanyrequests`. A digest stays the digest: a mirror serves the same manifest.

Stable API: `IMAGES: dict[str, ImageSource]`, `content_hash(name) -> str`, `webui_image(fw)`,
`base_images(name)`, `mirrored_bases(name, mirror)`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from components.registries.frameworks import WEBUI_FRAMEWORKS

ROOT = Path(__file__).resolve().parents[1]

# Files that never reach a build (caches of local test runs).
_IGNORED_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache"}
_IGNORED_SUFFIXES = {".pyc", ".pyo"}



@dataclass(frozen=True)
class ImageSource:
    """Where an image is built from: `context` (relative to the repository root), the
    Dockerfile inside it, and the build args passed with `--build-arg`."""

    context: str
    build_args: dict[str, str] = field(default_factory=dict)
    dockerfile: str = "Dockerfile"


IMAGES: dict[str, ImageSource] = {
    "router": ImageSource("images/router"),
    # One image per framework from one Dockerfile (images/webui: `ARG FRAMEWORK`).
    **{f"webui-{fw}": ImageSource("images/webui", {"FRAMEWORK": fw}) for fw in WEBUI_FRAMEWORKS},
    "queue-agent": ImageSource("images/queue-agent"),
}

# A full reference: [registry[:port]/]path[:tag][@sha256:digest], no spaces, lower-case path
# (the OCI distribution spec's repository name grammar; a tag is at most 128 characters).
REFERENCE = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"          # registry host[:port]
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"        # first path component
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"  # further path components
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"      # :tag
    r"(?:@sha256:[0-9a-f]{64})?$")                  # @digest


def webui_image(framework: str) -> str:
    """The image name of one WebUI framework (`webui-automatic1111`...)."""
    name = f"webui-{framework}"
    if name not in IMAGES:
        raise KeyError(f"no image for framework {framework!r}; known: {', '.join(WEBUI_FRAMEWORKS)}")
    return name


# A global `ARG <NAME>_IMAGE=<reference>` (before the first FROM) and a `FROM ${<NAME>_IMAGE}`.
_BASE_ARG = re.compile(r"^ARG\s+([A-Z0-9_]+_IMAGE)=(\S+)\s*$", re.MULTILINE)
_FROM_ARG = re.compile(r"^FROM\s+\$\{([A-Z0-9_]+)\}", re.MULTILINE)


def base_images(name: str) -> dict[str, str]:
    """ARG name -> default reference of each base image the image's Dockerfile starts FROM."""
    source = IMAGES[name]
    text = (ROOT / source.context / source.dockerfile).read_text()
    global_part = text[:text.index("\nFROM ")] if "\nFROM " in text else text
    defaults = dict(_BASE_ARG.findall(global_part))
    used = set(_FROM_ARG.findall(text))
    return {arg: ref for arg, ref in defaults.items() if arg in used}


def docker_hub_path(reference: str) -> str | None:
    """The Docker Hub repository path of a reference (`python:3.11` -> `library/python:3.11`),
    or None when the reference names another registry (a first component with `.` or `:`,
    or `localhost`: the Docker convention for a registry host)."""
    first, _, rest = reference.partition("/")
    if rest and first in ("docker.io", "index.docker.io"):
        reference = rest
    elif rest and ("." in first or ":" in first or first == "localhost"):
        return None
    return reference if "/" in reference.split(":")[0].split("@")[0] else f"library/{reference}"


def mirrored_bases(name: str, mirror: str | None) -> dict[str, str]:
    """Build args that pull the image's Docker Hub bases through `mirror` (a registry path that
    serves Docker Hub, e.g. an Artifact Registry remote repository); others stay as they are."""
    if not mirror:
        return {}
    moved = {}
    for arg, reference in base_images(name).items():
        path = docker_hub_path(reference)
        if path is not None:
            moved[arg] = f"{mirror.rstrip('/')}/{path}"
    return moved


def context_files(name: str) -> dict[str, Path]:
    """Context-relative path -> file, sorted, for the image `name` (caches left out)."""
    source = IMAGES[name]
    folder = ROOT / source.context
    files: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (path.is_file() and not (set(rel.parts) & _IGNORED_PARTS)
                and path.suffix not in _IGNORED_SUFFIXES):
            files[rel.as_posix()] = path
    return files


def content_hash(name: str) -> str:
    """A 16-hex-digit hash of everything that decides the image `name`: each file's path and
    bytes in its context, the Dockerfile's name and the build args (sorted)."""
    if name not in IMAGES:
        raise KeyError(f"unknown image {name!r}; known: {', '.join(IMAGES)}")
    source = IMAGES[name]
    digest = hashlib.sha256()
    digest.update(f"dockerfile={source.dockerfile}\0".encode())
    for key, value in sorted(source.build_args.items()):
        digest.update(f"arg {key}={value}\0".encode())
    for rel, path in context_files(name).items():
        data = path.read_bytes()
        digest.update(f"file {rel} {len(data)}\0".encode() + data + b"\0")
    return digest.hexdigest()[:16]
