"""What a first real deploy of aws-dev needs, checked on the registered resources
against the definitions they must agree with (the WebUI image's Dockerfile and settings, the
pulumi-kubernetes await rules, ECR, the VPC CNI add-on)."""

from __future__ import annotations

import json
import re

import pytest

from tests.program.aws.aws_fixtures import STACK, aws_config, aws_config_of, aws_plan, aws_update, env_of  # noqa: F401
from tools.preview import ROOT

JOB = "kubernetes:batch/v1:Job"
SCALED_JOB = "kubernetes:keda.sh/v1alpha1:ScaledJob"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
REPOSITORY = "aws:ecr/repository:Repository"
BUILD = "command:local:Command"
WEBUI_DOCKERFILE = ROOT / "images" / "webui" / "Dockerfile"
WEBUI_PACKAGE = ROOT / "images" / "webui" / "sdfleet_webui"


def webui_sources() -> str:
    """The WebUI image's programs; their env names live in settings.py (and env.py)."""
    return "\n".join(p.read_text() for p in sorted(WEBUI_PACKAGE.glob("*.py")))


def _pods(result):
    """(name, pod spec) of every batch worker."""
    for r in result.of_type(SCALED_JOB):
        yield r.name, r.inputs["spec"]["jobTargetRef"]["template"]["spec"]
    for r in result.of_type(DEPLOYMENT):
        yield r.name, r.inputs["spec"]["template"]["spec"]


def _container(pod: dict, name: str) -> dict:
    return next(c for c in pod.get("initContainers", []) + pod["containers"] if c["name"] == name)


# --- 15.1 / 13.9: model sync ------------------------------------------------------------------

def _venvs_in(dockerfile_text: str) -> set[str]:
    """Virtualenvs the Dockerfile creates (`python... -m venv <dir>`), with ARGs left literal."""
    return set(re.findall(r"-m venv (/[\w/.-]+)", dockerfile_text))


@pytest.mark.parametrize("stack", ["aws-dev", "dev"])
def test_model_sync_command_resolves_in_the_webui_image(plan, stack):
    from tools.preview import read_stack_config
    job = plan(read_stack_config(stack), preview=True, stack=stack).one(JOB, "model-sync").inputs
    (fetch,) = job["spec"]["template"]["spec"]["containers"]
    program = fetch["command"][0]
    # No bare `python`: the image's PATH has none; its programs live in a venv it creates.
    assert program.startswith("/"), fetch["command"]
    venv = program.removesuffix("/bin/python")
    assert venv in _venvs_in(WEBUI_DOCKERFILE.read_text()), (program, WEBUI_DOCKERFILE)
    assert fetch["command"][1:3] == ["-m", "sdfleet_webui.fetch"]


@pytest.mark.parametrize("stack", ["aws-dev", "dev"])
def test_model_sync_is_awaited_as_long_as_its_downloads_take(plan, stack):
    """pulumi-kubernetes awaits a Job 10 minutes unless told otherwise; an SDXL checkpoint is
    ~7 GB, which at 10 MB/s alone is over 11 minutes."""
    from components.k8s.model_sync import SLOW_RATE_BYTES_PER_SECOND
    from tools.preview import read_stack_config
    job = plan(read_stack_config(stack), preview=True, stack=stack).one(JOB, "model-sync").inputs
    timeout = int(job["metadata"]["annotations"]["pulumi.com/timeoutSeconds"])
    sdxl_bytes = 6_938_078_334  # sd_xl_base_1.0.safetensors on Hugging Face
    assert timeout > 600 and timeout > sdxl_bytes / SLOW_RATE_BYTES_PER_SECOND
    assert job["spec"]["activeDeadlineSeconds"] == timeout
    # progress is logged while it downloads
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SDFLEET_FETCH_PROGRESS_SECONDS" in env
    assert '"SDFLEET_FETCH_PROGRESS_SECONDS"' in webui_sources()


def test_model_sync_runs_where_the_webui_image_fits(aws_update):
    from components.aws.karpenter import DATA_VOLUME_GB
    pod = aws_update.one(JOB, "model-sync").inputs["spec"]["template"]["spec"]
    # not on the system nodes (20 GB disk): on a GPU node with its data volume
    assert pod["nodeSelector"] == {"sdfleet.dev/pool": "gpu"}
    assert DATA_VOLUME_GB >= 100
    pool = aws_update.one("kubernetes:karpenter.sh/v1:NodePool").inputs["spec"]
    (taint,) = pool["template"]["spec"]["taints"]
    assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"]
               for t in pod["tolerations"])
    assert "nvidia.com/gpu" not in json.dumps(pod["containers"][0]["resources"])
    template = aws_update.one(JOB, "model-sync").inputs["spec"]["template"]["metadata"]
    # Nothing that would keep Karpenter's drain from stopping it gracefully.
    assert "karpenter.sh/do-not-disrupt" not in (template.get("annotations") or {})


def test_there_is_one_model_sync_component(aws_update):
    import components.k8s.batch as batch
    assert not hasattr(batch, "ModelSync") and not hasattr(batch, "models_document")
    syncs = [r for r in aws_update.resources if r.type == "sdfleet:k8s:ModelSync"]
    assert len(syncs) == 1


# --- 15.3: images ---------------------------------------------------------------------------

def test_the_stack_makes_its_images_before_any_workload_uses_them(aws_update):
    repositories = {r.inputs["name"]: r for r in aws_update.of_type(REPOSITORY)}
    assert set(repositories) == {"sdbatch/webui-automatic1111", "sdbatch/webui-comfyui",
                                 "sdbatch/queue-agent"}
    for repo in repositories.values():
        assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
        assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    policies = aws_update.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
    assert len(policies) == 3
    for p in policies:
        (rule,) = json.loads(p.inputs["policy"])["rules"]
        assert rule["action"] == {"type": "expire"}
    builds = {b.urn: b for b in aws_update.of_type(BUILD) if not b.name.endswith("-preflight-check")}
    assert len(builds) == 3
    by_image = {}
    for b in builds.values():
        env = b.inputs["environment"]
        by_image[env["IMAGE_URI"]] = b.urn
        assert env["TAG"].startswith("c-") and env["IMAGE_URI"].endswith(":" + env["TAG"])
    # every workload (and the sync Job) names a built image and depends on its build
    users = [aws_update.one(JOB, "model-sync")] + aws_update.of_type(SCALED_JOB) + aws_update.of_type(DEPLOYMENT)
    for r in users:
        text = json.dumps(r.inputs)
        images = set(re.findall(r'"image": "([^"]+)"', text))
        assert images and images <= set(by_image), (r.name, images)
        assert {by_image[i] for i in images} <= set(r.dependencies), r.name


def test_prebuilt_images_replace_repositories_and_builds(plan, aws_config_of):
    prebuilt = {"webui-automatic1111": "registry.example.com/sd/a1111@sha256:" + "a" * 64,
                "webui-comfyui": "registry.example.com/sd/comfy:1.0",
                "queue-agent": "registry.example.com/sd/agent:1.0"}
    result = plan(aws_config_of(lambda p: p.update(images={"prebuilt": prebuilt})),
                  preview=False, stack=STACK)
    assert not result.of_type(REPOSITORY) and not [b for b in result.of_type(BUILD) if not b.name.endswith("-preflight-check")]
    assert result.one(JOB, "model-sync").inputs["spec"]["template"]["spec"]["containers"][0]["image"] == \
        prebuilt["webui-automatic1111"]
    comfy = result.one(DEPLOYMENT, "comfyui").inputs["spec"]["template"]["spec"]
    assert _container(comfy, "webui")["image"] == prebuilt["webui-comfyui"]
    assert _container(comfy, "agent")["image"] == prebuilt["queue-agent"]


def test_an_unchanged_image_folder_keeps_its_tag(tmp_path, monkeypatch):
    import components.images as images
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\n")
    (folder / "app.py").write_text("print(1)\n")
    monkeypatch.setattr(images, "ROOT", tmp_path)
    monkeypatch.setitem(images.IMAGES, "probe",
                        images.ImageSource("img", {"FRAMEWORK": "x"}))
    first = images.content_hash("probe")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert images.content_hash("probe") == first
    (folder / "app.py").write_text("print(2)\n")
    assert images.content_hash("probe") != first


# --- 15.4 / 15.10 / 15.11: workers ---------------------------------------------------------------

def test_each_runtime_runs_its_framework_image_and_agent_api(aws_update):
    frameworks = {}
    for name, pod in _pods(aws_update):
        webui, agent = _container(pod, "webui"), _container(pod, "agent")
        framework = env_of(agent)["WEBUI_FRAMEWORK"]
        assert env_of(webui)["SDFLEET_FRAMEWORK"] == framework
        assert f"/webui-{framework}:" in webui["image"]
        frameworks[name] = framework
    assert sorted(frameworks.values()) == ["automatic1111", "comfyui"]


def _launch_argv(env: dict, framework: str) -> list[str]:
    """The framework command the WebUI image's supervisor builds from this env."""
    import sys
    sys.path.insert(0, str(ROOT / "images" / "webui"))
    try:
        from sdfleet_webui import frameworks
        from sdfleet_webui.supervisor import SupervisorConfig
    finally:
        sys.path.remove(str(ROOT / "images" / "webui"))
    config = SupervisorConfig.from_env({**env, "SDFLEET_FRAMEWORKS_ROOT": "/nonexistent"})
    argv, _ = frameworks.launch_command(framework, config.launch)
    return argv


def _bound_host(argv: list[str], framework: str) -> str:
    """Where the framework binds, read the way each one reads its own arguments:
    A1111 `--server-name` first, else 0.0.0.0 with `--listen` (modules/initialize_util.py
    gradio_server_name); ComfyUI `--listen <host>` (comfy/cli_args.py)."""
    if framework == "automatic1111":
        if "--server-name" in argv:
            return argv[argv.index("--server-name") + 1]
        return "0.0.0.0" if "--listen" in argv else "127.0.0.1"
    return argv[argv.index("--listen") + 1] if "--listen" in argv else "127.0.0.1"


def test_webui_listens_on_loopback_and_nothing_reaches_the_pods(aws_update):
    for name, pod in _pods(aws_update):
        webui = _container(pod, "webui")
        framework = env_of(webui)["SDFLEET_FRAMEWORK"]
        argv = _launch_argv(env_of(webui), framework)
        assert _bound_host(argv, framework) == "127.0.0.1", (name, argv)
        assert "ports" not in webui, name
        assert env_of(_container(pod, "agent"))["WEBUI_URL"].startswith("http://127.0.0.1:")
    (policy,) = aws_update.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    assert policy.inputs["metadata"]["namespace"] == "sdfleet-batch"
    assert policy.inputs["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"]}
    cni = aws_update.one("aws:eks/addon:Addon", "vpc-cni").inputs
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_webui_env_names_are_ones_the_image_reads(aws_update):
    source = webui_sources()
    for name, pod in _pods(aws_update):
        for variable in env_of(_container(pod, "webui")):
            assert f'"{variable}"' in source, (name, variable)


def test_workers_have_scratch_space(aws_update):
    for name, pod in _pods(aws_update):
        mounts = {m["mountPath"]: m["name"] for m in _container(pod, "webui")["volumeMounts"]}
        volume = next(v for v in pod["volumes"] if v["name"] == mounts["/scratch"])
        assert volume["emptyDir"]["sizeLimit"] == "50Gi", name


def test_time_slicing_is_refused_with_a_clear_error(plan, aws_config_of):
    from components.config import ConfigError, parse_platform
    config = aws_config_of(lambda p: p["aws"]["gpu"].update(timeSlicingReplicas=4))
    with pytest.raises(ConfigError) as error:
        parse_platform(config["sdfleet:platform"], stack=STACK, aws_region="us-east-1")
    (line,) = error.value.lines
    assert line.startswith("sdfleet:platform.aws.gpu.timeSlicingReplicas: 4 is not allowed")
    assert "Karpenter" in line


# --- 15.9: the shutdown arithmetic ----------------------------------------------------------------

def test_a_spot_interruption_leaves_time_to_release_the_job(aws_update):
    from components.k8s.batch import NOTICE_DELIVERY_SECONDS, RELEASE_SECONDS, SPOT_NOTICE_SECONDS
    for name, pod in _pods(aws_update):
        grace = int(env_of(_container(pod, "agent"))["SHUTDOWN_GRACE_SECONDS"])
        stop = int(env_of(_container(pod, "webui"))["SDFLEET_STOP_GRACE_SECONDS"])
        pod_grace = pod["terminationGracePeriodSeconds"]
        # the agent's grace, its release, then the WebUI's stop fit in the pod's grace ...
        assert grace + RELEASE_SECONDS + stop <= pod_grace, name
        # ... which fits in what is left of the two-minute notice once Karpenter has it
        assert pod_grace <= SPOT_NOTICE_SECONDS - NOTICE_DELIVERY_SECONDS, name
        assert _container(pod, "webui")["restartPolicy"] == "Always"  # stopped after the agent


def test_an_unknown_prebuilt_image_name_is_refused(aws_config_of):
    from components.config import ConfigError, parse_platform
    config = aws_config_of(lambda p: p.update(images={"prebuilt": {"webui": "r.example/x:1"}}))
    with pytest.raises(ConfigError) as error:
        parse_platform(config["sdfleet:platform"], stack=STACK, aws_region="us-east-1")
    (line,) = error.value.lines
    assert line.startswith("sdfleet:platform.images.prebuilt.webui: unknown image 'webui'")
    assert "webui-automatic1111" in line and "queue-agent" in line


def test_codebuild_role_has_the_minimum_an_s3_source_needs(aws_update):
    """CodeBuild's documented minimum for an S3 source: the objects, and the bucket's ACL and
    location (without them the build stops before it starts)."""
    import json
    (policy,) = [r for r in aws_update.of_type("aws:iam/rolePolicy:RolePolicy")
                 if r.name.endswith("-builder")]
    statements = json.loads(policy.inputs["policy"])["Statement"]
    actions = {a for s in statements for a in s["Action"]}
    assert {"s3:GetObject", "s3:GetObjectVersion", "s3:GetBucketAcl", "s3:GetBucketLocation"} <= actions
    bucket_level = next(s for s in statements if "s3:GetBucketAcl" in s["Action"])
    assert all(not r.endswith("/*") and r != "*" for r in bucket_level["Resource"])
