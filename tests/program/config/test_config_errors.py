"""Bad stack configs get one clear line naming the key: never a traceback, never silence.

Table-driven: each case edits a copy of a real stack file's `config:` map (Pulumi.dev.yaml
or Pulumi.aws-dev.yaml) and names the key its error must start with. Every case goes
through the real loader (`parse_stack_config`, what `make plan` calls); a sample also runs
`python -m tools.plan` as a user would, for exit status 2 and no traceback. Each of these
configs passed silently, or crashed later (the cost estimator on `61 25 * * 9`), before the
rules in components/config/.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from components.config import ConfigError, parse_stack_config, read_stack_yaml
from tests.stacks import stack_config
from tools.preview import ROOT

P = "sdfleet:platform"


def _gcp(edit):
    def apply(config):
        edit(config[P])
    return ("dev", apply)


def _aws(edit):
    def apply(config):
        edit(config[P])
    return ("aws-dev", apply)


def _keys(edit):
    """An edit of the whole `config:` map (secret keys live beside sdfleet:platform)."""
    return ("dev", edit)


def _set(path: str, value):
    """Set a dotted path (`gpuPools.0.maxNodes`) inside sdfleet:platform."""
    def edit(platform):
        parts = path.split(".")
        node = platform
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return edit


def _model(**fields):
    """Append a model entry to models.items (index 2 in both stacks)."""
    def edit(platform):
        platform["models"]["items"].append(fields)
    return edit


HF = dict(name="extra", kind="lora", source="huggingface", repo="owner/repo", file="x.safetensors")
URL = dict(name="extra", kind="lora", source="url")

# (id, (stack, edit), key path the error line must start with)
CASES = [
    # --- a Kubernetes minor the pinned Agones does not support ---------------------------------
    ("k8s-minor-unsupported", _gcp(_set("cluster.kubernetesVersion", "1.35")),
     f"{P}.cluster.kubernetesVersion"),
    ("k8s-patch-not-minor", _gcp(_set("cluster.kubernetesVersion", "1.33.5-gke.100")),
     f"{P}.cluster.kubernetesVersion"),
    # --- cron: semantically invalid, and not a cron at all ------------------------------------
    ("cron-61-25-9", _gcp(_set("culling.schedule", "61 25 * * 9")), f"{P}.culling.schedule"),
    ("cron-minute-60", _gcp(_set("culling.schedule", "60 * * * *")), f"{P}.culling.schedule"),
    ("cron-hour-24", _gcp(_set("culling.schedule", "0 24 * * *")), f"{P}.culling.schedule"),
    ("cron-dom-0", _gcp(_set("culling.schedule", "0 0 0 * *")), f"{P}.culling.schedule"),
    ("cron-month-13", _gcp(_set("culling.schedule", "0 0 1 13 *")), f"{P}.culling.schedule"),
    ("cron-dow-8", _gcp(_set("culling.schedule", "0 0 * * 8")), f"{P}.culling.schedule"),
    # robfig/cron (Agones) bounds day of week to 0-6
    ("peak-cron-dow-7", _gcp(_set("fleet.peakHours.startCron", "0 8 * * 7")),
     f"{P}.fleet.peakHours.startCron"),
    ("peak-cron-tz", _gcp(_set("fleet.peakHours.startCron", "CRON_TZ=Europe/Berlin 0 8 * * 1")),
     f"{P}.fleet.peakHours.startCron"),
    ("cron-backwards-range", _gcp(_set("culling.schedule", "0 9-5 * * *")), f"{P}.culling.schedule"),
    ("cron-step-0", _gcp(_set("culling.schedule", "*/0 * * * *")), f"{P}.culling.schedule"),
    ("cron-words", _gcp(_set("culling.schedule", "every 5 minutes")), f"{P}.culling.schedule"),
    ("cron-six-fields", _gcp(_set("culling.schedule", "0 * * * * *")), f"{P}.culling.schedule"),
    ("cron-macro", _gcp(_set("culling.schedule", "@hourly")), f"{P}.culling.schedule"),
    ("cron-empty", _gcp(_set("culling.schedule", "")), f"{P}.culling.schedule"),
    ("cron-bad-name", _gcp(_set("culling.schedule", "0 0 * * funday")), f"{P}.culling.schedule"),
    ("cron-number", _gcp(_set("culling.schedule", 5)), f"{P}.culling.schedule"),
    ("peak-cron-invalid", _gcp(_set("fleet.peakHours.startCron", "0 25 * * 1-5")),
     f"{P}.fleet.peakHours.startCron"),
    ("peak-cron-not-cron", _gcp(_set("fleet.peakHours.startCron", "weekdays at 8")),
     f"{P}.fleet.peakHours.startCron"),
    # --- strict ints and booleans -------------------------------------------------------------
    ("max-nodes-true", _gcp(_set("gpuPools.0.maxNodes", True)), f"{P}.gpuPools[0].maxNodes"),
    ("min-nodes-false", _gcp(_set("gpuPools.0.minNodes", False)), f"{P}.gpuPools[0].minNodes"),
    ("max-nodes-string", _gcp(_set("gpuPools.0.maxNodes", "6")), f"{P}.gpuPools[0].maxNodes"),
    ("max-nodes-float", _gcp(_set("gpuPools.0.maxNodes", 6.5)), f"{P}.gpuPools[0].maxNodes"),
    ("spot-string", _gcp(_set("gpuPools.0.spot", "yes")), f"{P}.gpuPools[0].spot"),
    ("spot-number", _gcp(_set("gpuPools.0.spot", 1)), f"{P}.gpuPools[0].spot"),
    ("accelerator-count-true", _gcp(_set("gpuPools.0.acceleratorCount", True)),
     f"{P}.gpuPools[0].acceleratorCount"),
    ("buffer-true", _gcp(_set("fleet.buffer", True)), f"{P}.fleet.buffer"),
    ("idle-minutes-string", _gcp(_set("culling.idleMinutes", "30")), f"{P}.culling.idleMinutes"),
    ("private-nodes-string", _gcp(_set("cluster.privateNodes", "true")),
     f"{P}.cluster.privateNodes"),
    ("router-replicas-true", _gcp(_set("webui.routerReplicas", True)), f"{P}.webui.routerReplicas"),
    ("system-nodes-true", _aws(_set("aws.cluster.systemNodes", True)), f"{P}.aws.cluster.systemNodes"),
    ("required-string", _gcp(_set("models.items.1.required", "no")),
     f"{P}.models.items[1].required"),
    # --- time zone ----------------------------------------------------------------------------
    ("tz-unknown", _gcp(_set("fleet.peakHours.timezone", "Mars/Olympus_Mons")),
     f"{P}.fleet.peakHours.timezone"),
    ("tz-abbreviation", _gcp(_set("fleet.peakHours.timezone", "CEST")),
     f"{P}.fleet.peakHours.timezone"),
    ("tz-path", _gcp(_set("fleet.peakHours.timezone", "../../etc/passwd")),
     f"{P}.fleet.peakHours.timezone"),
    ("tz-offset", _gcp(_set("fleet.peakHours.timezone", "+02:00")),
     f"{P}.fleet.peakHours.timezone"),
    ("tz-machine-local", _gcp(_set("fleet.peakHours.timezone", "localtime")),
     f"{P}.fleet.peakHours.timezone"),
    # --- secrets ------------------------------------------------------------------------------
    ("hf-token-plaintext", _keys(lambda c: c.update({"sdfleet:huggingfaceToken": "hf_abc"})),
     "sdfleet:huggingfaceToken"),
    ("civitai-token-plaintext", _keys(lambda c: c.update({"sdfleet:civitaiToken": "0123abcd"})),
     "sdfleet:civitaiToken"),
    ("other-secret-plaintext",
     _keys(lambda c: c.update({"sdfleet:oauthClientSecret": "GOCSPX-abc"})),
     "sdfleet:oauthClientSecret"),
    ("secret-as-number", _keys(lambda c: c.update({"sdfleet:civitaiToken": 12345})),
     "sdfleet:civitaiToken"),
    ("secret-in-platform", _gcp(lambda p: p.update(huggingfaceToken="hf_abc")),
     f"{P}.huggingfaceToken"),
    # --- model URLs carrying credentials, paths escaping their folder --------------------------
    ("url-token-param", _gcp(_model(**URL, url="https://civitai.com/api/download/models/1?token=abc")),
     f"{P}.models.items[2].url"),
    ("url-api-key", _gcp(_model(**URL, url="https://example.com/m.safetensors?api_key=abc")),
     f"{P}.models.items[2].url"),
    ("url-userinfo", _gcp(_model(**URL, url="https://user:pass@example.com/m.safetensors")),
     f"{P}.models.items[2].url"),
    ("url-presigned-s3",
     _gcp(_model(**URL, url="https://b.s3.amazonaws.com/m?X-Amz-Signature=ab&X-Amz-Credential=x")),
     f"{P}.models.items[2].url"),
    ("url-hf-token-value", _gcp(_model(**URL, url="https://example.com/m?t=hf_abcdef")),
     f"{P}.models.items[2].url"),
    ("url-http", _gcp(_model(**URL, url="http://example.com/m.safetensors")),
     f"{P}.models.items[2].url"),
    ("url-space", _gcp(_model(**URL, url="https://example.com/my model.safetensors")),
     f"{P}.models.items[2].url"),
    ("file-dotdot", _gcp(_model(**{**HF, "file": "../../etc/passwd"})), f"{P}.models.items[2].file"),
    ("file-inner-dotdot", _gcp(_model(**{**HF, "file": "vae/../../x.safetensors"})),
     f"{P}.models.items[2].file"),
    ("file-absolute", _gcp(_model(**{**HF, "file": "/etc/passwd"})), f"{P}.models.items[2].file"),
    ("file-backslash", _gcp(_model(**{**HF, "file": "..\\x.safetensors"})),
     f"{P}.models.items[2].file"),
    ("repo-dotdot", _gcp(_model(**{**HF, "repo": "../secrets"})), f"{P}.models.items[2].repo"),
    ("repo-dotdot-name", _gcp(_model(**{**HF, "repo": "owner/.."})), f"{P}.models.items[2].repo"),
    ("repo-double-dot-inside", _gcp(_model(**{**HF, "repo": "owner/a..b"})),
     f"{P}.models.items[2].repo"),
    ("revision-dotdot", _gcp(_model(**{**HF, "revision": "../main"})),
     f"{P}.models.items[2].revision"),
    ("aws-file-dotdot", _aws(_set("models.items.0.file", "../sd.safetensors")),
     f"{P}.models.items[0].file"),
    # --- sections of the other cloud ----------------------------------------------------------
    ("aws-with-gpu-pools", _aws(lambda p: p.update(gpuPools=[{
        "name": "l4", "machineType": "g2-standard-8", "accelerator": "nvidia-l4"}])),
     f"{P}.gpuPools"),
    ("aws-with-network", _aws(lambda p: p.update(network={"nodesCidr": "10.10.0.0/20"})),
     f"{P}.network"),
    ("aws-with-fleet", _aws(lambda p: p.update(fleet={"buffer": 1})), f"{P}.fleet"),
    ("aws-with-access", _aws(lambda p: p.update(access={
        "domain": "sd.example.com", "members": ["user:a@example.com"]})), f"{P}.access"),
    ("aws-with-culling", _aws(lambda p: p.update(culling={"idleMinutes": 30})), f"{P}.culling"),
    ("aws-with-cache", _aws(lambda p: p.update(cache={"tier": "BASIC"})), f"{P}.cache"),
    ("gcp-with-aws", _gcp(lambda p: p.update(aws={"network": {"vpcCidr": "10.40.0.0/16"}})), f"{P}.aws"),
    # --- machine types ------------------------------------------------------------------------
    ("gpu-machine-unknown-family", _gcp(_set("gpuPools.0.machineType", "q9-standard-8")),
     f"{P}.gpuPools[0].machineType"),
    ("system-machine-unknown-family", _gcp(_set("systemPool.machineType", "zz-standard-4")),
     f"{P}.systemPool.machineType"),
    ("system-machine-no-shape", _gcp(_set("systemPool.machineType", "e2")),
     f"{P}.systemPool.machineType"),
    ("system-machine-aws-name", _gcp(_set("systemPool.machineType", "m6i.large")),
     f"{P}.systemPool.machineType"),
    ("aws-instance-gcp-name", _aws(_set("aws.cluster.systemInstanceType", "e2-standard-4")),
     f"{P}.aws.cluster.systemInstanceType"),
    # --- image references ---------------------------------------------------------------------
    ("webui-image-space", _gcp(_set("images.prebuilt.webui-automatic1111", "us-docker.pkg.dev/p/r/webui :v1")),
     f"{P}.images.prebuilt.webui-automatic1111"),
    ("router-image-space", _gcp(_set("images.prebuilt.router", "router image")),
     f"{P}.images.prebuilt.router"),
    ("webui-image-uppercase-path", _gcp(_set("images.prebuilt.webui-automatic1111", "docker.io/Library/WebUI:v1")),
     f"{P}.images.prebuilt.webui-automatic1111"),
    ("webui-image-scheme", _gcp(_set("images.prebuilt.webui-automatic1111", "https://docker.io/library/webui:v1")),
     f"{P}.images.prebuilt.webui-automatic1111"),
    ("webui-image-bad-digest", _gcp(_set("images.prebuilt.webui-automatic1111", "r.example.com/webui@sha256:xyz")),
     f"{P}.images.prebuilt.webui-automatic1111"),
    ("aws-runtime-image-space", _aws(_set("images.prebuilt.webui-comfyui", "webui api:v1")),
     f"{P}.images.prebuilt.webui-comfyui"),
    ("aws-agent-image-newline", _aws(_set("images.prebuilt.queue-agent", "agent:v1\nrm -rf /")),
     f"{P}.images.prebuilt.queue-agent"),
    ("aws-model-sync-image-tag-space", _aws(_set("images.prebuilt.webui-automatic1111", "sync:v 1")),
     f"{P}.images.prebuilt.webui-automatic1111"),
    # --- image hosts --------------------------------------------------------------------------
    ("hosts-star", _aws(_set("aws.api.allowedImageHosts", ["*"])), f"{P}.aws.api.allowedImageHosts[0]"),
    ("hosts-wildcard-domain", _aws(_set("aws.api.allowedImageHosts", ["*.example.com"])),
     f"{P}.aws.api.allowedImageHosts[0]"),
    ("hosts-http", _aws(_set("aws.api.allowedImageHosts", ["http://images.example.com"])),
     f"{P}.aws.api.allowedImageHosts[0]"),
    ("hosts-https", _aws(_set("aws.api.allowedImageHosts", ["images.example.com", "https://x.org"])),
     f"{P}.aws.api.allowedImageHosts[1]"),
    ("hosts-path", _aws(_set("aws.api.allowedImageHosts", ["images.example.com/in"])),
     f"{P}.aws.api.allowedImageHosts[0]"),
    ("hosts-port", _aws(_set("aws.api.allowedImageHosts", ["images.example.com:8443"])),
     f"{P}.aws.api.allowedImageHosts[0]"),
]

# Duplicate keys: (id, stack file text edit, key path). The edit works on the raw YAML text,
# since a parsed mapping cannot hold a key twice.
DUPLICATES = [
    ("dup-max-nodes", "dev", ("        maxNodes: 6\n", "        maxNodes: 6\n        maxNodes: 60\n"),
     f"{P}.gpuPools[0].maxNodes"),
    ("dup-culling", "dev", ("    culling:\n", "    culling:\n      idleMinutes: 5\n"),
     f"{P}.culling.idleMinutes"),
    ("dup-project", "dev", ("  gcp:region: us-central1\n",
                            "  gcp:region: us-central1\n  gcp:project: other-project\n"),
     "gcp:project"),
    ("dup-aws-runtime-mode", "aws-dev", ("          mode: scaledjob\n",
                                         "          mode: scaledjob\n          mode: scaledobject\n"),
     f"{P}.aws.runtimes[0].mode"),
]


def _config(stack: str) -> dict:
    # The fleet-section rules are a one-fleet stack's; profiles have their own tests.
    return copy.deepcopy(stack_config("single-profile" if stack == "dev" else stack))


def _lines(config: dict, stack: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_stack_config(config, stack=stack)
    return info.value.lines


def test_the_table_is_large_enough():
    assert len(CASES) + len(DUPLICATES) >= 60
    assert len({c[0] for c in CASES + DUPLICATES}) == len(CASES) + len(DUPLICATES)


@pytest.mark.parametrize("stack", ["dev", "aws-dev"])
def test_the_real_stack_files_pass(stack):
    assert parse_stack_config(_config(stack), stack=stack).stack == stack


@pytest.mark.parametrize("change,key", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_config_names_its_key(change, key):
    stack, edit = change
    config = _config(stack)
    edit(config)
    lines = _lines(config, stack)
    named = [line for line in lines if line.startswith(key + ":")]
    assert named, f"no line names {key}: {lines}"
    # a line says what is wrong, beyond the key
    assert all(len(line) > len(key) + 15 for line in named), named


@pytest.mark.parametrize("stack,edit,key", [d[1:] for d in DUPLICATES], ids=[d[0] for d in DUPLICATES])
def test_duplicate_yaml_key_is_refused(stack, edit, key):
    text = (ROOT / f"Pulumi.{stack}.yaml").read_text()
    old, new = edit
    assert text.count(old) >= 1
    with pytest.raises(ConfigError) as info:
        read_stack_yaml(text.replace(old, new, 1), f"Pulumi.{stack}.yaml")
    assert any(line.startswith(key + ": duplicate key") for line in info.value.lines), \
        info.value.lines


def test_valid_values_of_the_new_rules_pass():
    config = _config("dev")
    p = config[P]
    p["culling"]["schedule"] = "*/2 0-23 1,15 jan-dec MON-FRI"
    p["fleet"]["peakHours"].update(startCron="30 7 * * 1-5", timezone="America/New_York")
    p["systemPool"]["machineType"] = "custom-4-16384"
    p["images"] = {"prebuilt": {"webui-automatic1111": "us-docker.pkg.dev/p/repo/webui:v1@sha256:" + "a" * 64,
                               "router": "localhost:5000/sdfleet/router"}}
    p["models"]["items"].append({"name": "x", "kind": "lora", "source": "url",
                                 "url": "https://example.com/files/x.safetensors?download=true"})
    p["models"]["items"].append({**HF, "name": "y", "file": "vae/diffusion_pytorch_model.safetensors",
                                 "revision": "refs/pr/1"})
    config["sdfleet:huggingfaceToken"] = {"secure": "v1:abc"}
    parse_stack_config(config, stack="dev")


def _plan(tmp_path, stack: str, text: str) -> subprocess.CompletedProcess:
    path = tmp_path / f"Pulumi.{stack}-broken.yaml"
    path.write_text(text)
    return subprocess.run([sys.executable, "-m", "tools.plan", "--stack", stack,
                           "--config-file", str(path)], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


PLAN_SAMPLE = ["cron-61-25-9", "max-nodes-true", "tz-unknown", "hf-token-plaintext",
               "url-token-param", "aws-with-gpu-pools", "hosts-star", "webui-image-space"]


@pytest.mark.parametrize("case_id", PLAN_SAMPLE)
def test_make_plan_exits_2_naming_the_key(tmp_path, case_id):
    _, (stack, edit), key = next(c for c in CASES if c[0] == case_id)
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    edit(document["config"])
    proc = _plan(tmp_path, stack, yaml.safe_dump(document))
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert f"  {key}:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_make_plan_exits_2_on_a_duplicate_key(tmp_path):
    text = (ROOT / "Pulumi.dev.yaml").read_text().replace(
        "        maxNodes: 6\n", "        maxNodes: 6\n        maxNodes: 60\n", 1)
    proc = _plan(tmp_path, "dev", text)
    assert proc.returncode == 2, proc.stderr
    assert f"  {P}.gpuPools[0].maxNodes: duplicate key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pulumi_up_refuses_a_plaintext_secret_before_any_resource():
    """The program's own loader (what `pulumi up` runs) applies the same rule: the engine
    marks `secure:` values secret; a plaintext one is refused with its key."""
    from tools.preview import run_program

    config = _config("dev")
    config["sdfleet:huggingfaceToken"] = "hf_plaintext"
    with pytest.raises(Exception) as info:
        run_program(config, preview=True)
    assert "sdfleet:huggingfaceToken: a plaintext value where a secret is required" in str(info.value)
    assert info.value.sdfleet_registrations == []
    config["sdfleet:huggingfaceToken"] = {"secure": "v1:ciphertext"}
    assert run_program(config, preview=True).resources
