"""Contracts two separately built programs share, kept identical (the Lambda archive
and the agent image cannot import one package)."""

from __future__ import annotations

import sys

from testing.batch.processes import AGENT_DIR, ROOT, SUBMIT_DIR

WEBUI_DIR = ROOT / "images" / "webui"


def test_the_bucket_layout_is_the_same_file_for_the_submit_function_and_the_agent():
    agent = (AGENT_DIR / "sdfleet_agent" / "layout.py").read_bytes()
    submit = (SUBMIT_DIR / "sdfleet_submit" / "layout.py").read_bytes()
    assert agent == submit


def test_the_agent_reads_the_manifest_the_fetcher_writes():
    from sdfleet_agent.models import MANIFEST_NAME
    sys.path.insert(0, str(WEBUI_DIR))
    try:
        from sdfleet_webui.manifest import MANIFEST_NAME as FETCHER_MANIFEST
    finally:
        sys.path.remove(str(WEBUI_DIR))
    assert MANIFEST_NAME == FETCHER_MANIFEST


def test_the_agent_checks_health_where_each_framework_answers():
    """A ComfyUI runtime whose agent polled A1111's route would never take a job."""
    from sdfleet_agent.settings import HEALTH_PATHS
    sys.path.insert(0, str(WEBUI_DIR))
    try:
        from sdfleet_webui.frameworks import HEALTH_PATHS as IMAGE_HEALTH_PATHS
    finally:
        sys.path.remove(str(WEBUI_DIR))
    for framework, path in HEALTH_PATHS.items():
        assert IMAGE_HEALTH_PATHS[framework] == path, framework
