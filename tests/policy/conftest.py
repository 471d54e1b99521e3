"""Stack configs for policy tests, validated by the real config model."""

from __future__ import annotations

from typing import Callable

import pytest

from components.config import StackConfig, parse_platform

GCP_PLATFORM = {
    "cloud": "gcp",
    "gpuPools": [{"name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4",
                  "maxNodes": 4}],
    "access": {"domain": "sd.example.com", "organizationDomain": "example.com",
               "members": ["group:artists@example.com"]},
}


@pytest.fixture
def stack_config_of() -> Callable[..., StackConfig]:
    """A StackConfig from a minimal valid platform with some keys replaced."""

    def make(**platform) -> StackConfig:
        raw = {**GCP_PLATFORM, **platform}
        if raw["cloud"] == "aws":
            # GCP sections in an AWS stack are refused (components/config/models.py GCP_SECTIONS)
            raw.pop("access", None)
            raw.pop("gpuPools", None)
            raw.setdefault("aws", {})
            return parse_platform(raw, stack="test", aws_region="us-east-1")
        return parse_platform(raw, stack="test", gcp_project="example-project",
                              gcp_region="us-central1")

    return make


@pytest.fixture(autouse=True)
def no_stack_config_in_process():
    """Policies fall back to the stack config the CLI hands the pack (`pulumi.runtime` config).
    A program run earlier in this process (tests/cost, tests/program) leaves its stack's config
    there; each policy test starts without it, as the pack does when the CLI passes none."""
    import pulumi.runtime

    pulumi.runtime.set_all_config({}, [])
    yield
