"""`make plan` as a user runs it: a separate process, its output and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from tools.preview import ROOT


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


def test_text_plan_shows_the_tree_counts_and_outputs():
    proc = _plan("--stack", "dev")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "+ gcp:container/cluster:Cluster  sdfleet-gke" in out
    assert "gcp:container/nodePool:NodePool  sdfleet-gpu-l4" in out
    # children are indented under their component
    assert "\n    + sdfleet:gcp:GkeCluster  sdfleet-gke\n        + gcp:container/cluster:Cluster" in out
    assert "Resources:" in out and "Outputs:" in out
    assert "kubeconfig: [secret]" in out


def test_json_plan_is_one_document_with_the_fields():
    proc = _plan("--stack", "dev", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"stack", "resources", "outputs", "policies", "cost"} <= set(doc)
    assert doc["stack"] == "dev"
    cluster = [r for r in doc["resources"] if r["type"] == "gcp:container/cluster:Cluster"]
    assert len(cluster) == 1 and set(cluster[0]) == {"urn", "type", "name", "parent", "inputs"}
    assert cluster[0]["inputs"]["privateClusterConfig"]["enablePrivateNodes"] is True


def test_preview_marks_values_known_only_after_deployment(tmp_path):
    proc = _plan("--stack", "dev", "--format", "json")
    doc = json.loads(proc.stdout)
    pools = [r for r in doc["resources"] if r["type"] == "gcp:container/nodePool:NodePool"]
    # the node pool's service account email is computed by GCP on create
    assert all(p["inputs"]["nodeConfig"]["serviceAccount"] == "(known after deployment)"
               for p in pools)


def _write_stack(tmp_path, edit) -> str:
    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    edit(config["config"])
    path = tmp_path / "Pulumi.broken.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_unknown_key_exits_2_and_names_it(tmp_path):
    path = _write_stack(tmp_path, lambda c: c["sdfleet:platform"]["cluster"].update(colour="red"))
    proc = _plan("--config-file", path, "--format", "json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "sdfleet:platform.cluster.colour: unknown key" in proc.stderr


def test_bad_value_exits_2_and_names_it(tmp_path):
    path = _write_stack(tmp_path, lambda c: c["sdfleet:platform"]["gpuPools"][0].update(
        machineType="n1-standard-4"))
    proc = _plan("--config-file", path)
    assert proc.returncode == 2
    assert "sdfleet:platform.gpuPools[0].accelerator: 'nvidia-l4'" in proc.stderr


def test_missing_stack_file_exits_2():
    proc = _plan("--stack", "no-such-stack")
    assert proc.returncode == 2 and "Pulumi.no-such-stack.yaml" in proc.stderr


@pytest.mark.parametrize("stack,foreign,at_least", [("dev", "pulumi_aws", 100),
                                                     ("aws-dev", "pulumi_gcp", 100)])
def test_a_stack_never_imports_the_other_clouds_provider(stack, foreign, at_least):
    code = ("import sys; from tools.preview import run_program, read_stack_config; "
            f"r = run_program(read_stack_config({stack!r}), stack={stack!r}); "
            f"assert len(r.resources) > {at_least}; "
            f"print(sorted(m for m in sys.modules if m.startswith({foreign!r})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, text=True, capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
