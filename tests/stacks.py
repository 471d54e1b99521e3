"""Stack configs the tests plan: the shipped stack files, and `single-profile`, a stack as it
was before profiles (tests/fixtures/Pulumi.single-profile.yaml), planned as stack `dev`."""

from __future__ import annotations

from pathlib import Path

from tools.preview import read_stack_config

SINGLE_PROFILE_FILE = Path(__file__).resolve().parent / "fixtures" / "Pulumi.single-profile.yaml"


def stack_config(stack: str) -> dict:
    if stack == "single-profile":
        return read_stack_config("dev", SINGLE_PROFILE_FILE)
    return read_stack_config(stack)
