"""The Dockerfile cannot be built here (no container engine); check what it promises."""

from __future__ import annotations

import re
from pathlib import Path

from sdfleet_webui import frameworks

DOCKERFILE = Path(__file__).resolve().parents[2] / "images" / "webui" / "Dockerfile"
TEXT = DOCKERFILE.read_text()


def args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(.*)$", TEXT, flags=re.M))


def test_base_image_and_frameworks_are_pinned():
    values = args()
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-cudnn\d+-runtime-ubuntu\d\d\.\d\d", values["CUDA_IMAGE"])
    for name in ("A1111_COMMIT", "SDNEXT_COMMIT", "COMFYUI_COMMIT"):
        assert re.fullmatch(r"[0-9a-f]{40}", values[name]), name
    assert re.fullmatch(r"\d+\.\d+\.\d+", values["TORCH_VERSION"])
    assert "latest" not in TEXT.lower()
    assert values["SDFLEET_FRAMEWORK"] in frameworks.FRAMEWORKS
    for framework in frameworks.FRAMEWORKS:
        assert f"{framework})" in TEXT  # every framework has an install branch


def test_runs_the_tested_programs_as_a_non_root_user():
    assert "COPY sdfleet_webui /opt/sdfleet/app/sdfleet_webui" in TEXT
    assert re.search(r"^USER 1000:1000$", TEXT, flags=re.M)
    assert 'CMD ["sdfleet_webui.supervisor"]' in TEXT
    assert "sdfleet_webui.fetch" in TEXT  # baking models uses the tested fetcher
    requirements = (DOCKERFILE.parent / "requirements.txt").read_text().splitlines()
    pins = [line for line in requirements if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in pins)
