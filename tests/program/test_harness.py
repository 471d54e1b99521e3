"""The mock engine itself: it must catch the mistakes that mocks usually hide."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.program.conftest import assert_all_resolved, unresolved_paths
from tools.preview import ROOT, UNKNOWN_MARK, run_program


def _program(tmp_path, body: str):
    path = tmp_path / "program.py"
    path.write_text(textwrap.dedent(body))
    return path


def test_duplicate_urns_are_refused(tmp_path):
    # In its own process: the failed registration leaves futures behind in the runtime.
    program = _program(tmp_path, """
        import pulumi_gcp as gcp
        gcp.projects.Service("same", service="compute.googleapis.com")
        gcp.projects.Service("same", service="compute.googleapis.com")
    """)
    code = ("import sys; from tools.preview import run_program, DuplicateUrnError\n"
            "try:\n    run_program({}, preview=False, program=sys.argv[1])\n"
            "except DuplicateUrnError as exc:\n    print('refused:', exc); sys.exit(0)\n"
            "sys.exit('duplicate URN was accepted')")
    proc = subprocess.run([sys.executable, "-c", code, str(program)], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: duplicate URN" in proc.stdout and "Service::same" in proc.stdout


def test_unknown_values_are_detected(tmp_path):
    # In preview the cluster endpoint is unknown, so an output built from it is too.
    program = _program(tmp_path, """
        import pulumi, pulumi_gcp as gcp
        c = gcp.container.Cluster("c", location="us-central1", initial_node_count=1)
        pulumi.export("endpoint", c.endpoint.apply(lambda e: f"https://{e}"))
    """)
    preview = run_program({}, preview=True, program=program)
    assert preview.outputs["endpoint"] == UNKNOWN_MARK
    assert unresolved_paths(preview.outputs) == [".endpoint"]
    update = run_program({}, preview=False, program=program)
    assert update.outputs["endpoint"] == "https://198.51.100.20"
    assert_all_resolved(update)


def test_assert_all_resolved_fails_on_unknown(tmp_path):
    program = _program(tmp_path, """
        import pulumi
        pulumi.export("never", pulumi.Output.from_input(1).apply(
            lambda _: pulumi.Output(set(), pulumi.Output.from_input(None).future(), 
                                    pulumi.Output.from_input(False).future())))
    """)
    result = run_program({}, preview=True, program=program)
    result.preview = False  # pretend: the helper must still spot the unknown value
    with pytest.raises(AssertionError, match="never resolved"):
        assert_all_resolved(result)


def test_every_registration_is_recorded_with_parent(dev_update):
    types = {r.type for r in dev_update.resources}
    assert {"gcp:container/cluster:Cluster", "gcp:container/nodePool:NodePool",
            "sdfleet:gcp:GkeCluster"} <= types
    assert all(r.urn.startswith("urn:pulumi:dev::sdfleet::") for r in dev_update.resources)
