"""The GCP interactive platform on its registered inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from components.images import content_hash
from tests.program.conftest import assert_all_resolved
from tools.preview import PlanResult

HELM = "kubernetes:helm.sh/v3:Release"
FLEET = "kubernetes:agones.dev/v1:Fleet"
AUTOSCALER = "kubernetes:autoscaling.agones.dev/v1:FleetAutoscaler"
FUNCTION = "gcp:cloudfunctionsv2/function:Function"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _pod(plan: PlanResult) -> dict:
    return plan.one(FLEET).inputs["spec"]["template"]["spec"]["template"]["spec"]


def _container(pod: dict, name: str) -> dict:
    return next(c for c in pod["containers"] if c["name"] == name)


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def _walk(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)
    else:
        yield value


def test_all_values_resolve_and_outputs(dev_update):
    assert_all_resolved(dev_update)
    out = dev_update.outputs
    assert out["url"] == "https://sd.example.com"
    assert out["clusterName"] == "sdfleet-gke"
    assert out["kubeconfig"] == "[secret]"
    assert out["registry"] == "us-central1-docker.pkg.dev/example-sdfleet-project/sdfleet-images"
    assert out["iapAudience"].startswith("/projects/123456789012/global/backendServices/")


# --- Filestore and the shared volume -----------------------------------------------------------

def test_filestore_from_config(dev_plan):
    fs = dev_plan.one("gcp:filestore/instance:Instance").inputs
    assert fs["tier"] == "BASIC_HDD" and fs["fileShares"]["capacityGb"] == 1024
    assert fs["location"] == "us-central1-a"  # BASIC tiers are zonal
    assert fs["networks"][0]["connectMode"] == "PRIVATE_SERVICE_ACCESS"
    export = fs["fileShares"]["nfsExportOptions"][0]
    # Nodes only (mounts come from kubelets); no squash, so the prepare Job can make the
    # top folders (tests/program/k8s/test_k8s_objects.py covers the why).
    assert export["ipRanges"] == ["10.10.0.0/20"]
    assert export["squashMode"] == "NO_ROOT_SQUASH"


def test_shared_volume_is_read_write_many(dev_update):
    pv = dev_update.one("kubernetes:core/v1:PersistentVolume").inputs["spec"]
    assert pv["accessModes"] == ["ReadWriteMany"]
    assert pv["nfs"] == {"server": "10.30.1.2", "path": "/sdfleet"}
    pvc = dev_update.one("kubernetes:core/v1:PersistentVolumeClaim").inputs
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["namespace"] == "sdfleet-webui"


def test_webui_sees_models_read_only_and_only_sync_sees_people(dev_plan):
    pod = _pod(dev_plan)
    webui, sync = _container(pod, "webui"), _container(pod, "user-sync")
    models = next(m for m in webui["volumeMounts"] if m["mountPath"] == "/models")
    assert models["readOnly"] is True and models["subPath"] == "models"
    assert all(m.get("subPath") != "users" for m in webui["volumeMounts"])
    users = next(m for m in sync["volumeMounts"] if m["mountPath"] == "/users")
    assert users["subPath"] == "users"
    assert {"mountPath": "/scratch", "name": "scratch"} in webui["volumeMounts"]


# --- Memorystore --------------------------------------------------------------------------------

def test_redis_has_auth_tls_and_private_access(dev_plan):
    redis = dev_plan.one("gcp:redis/instance:Instance").inputs
    assert redis["authEnabled"] is True
    assert redis["transitEncryptionMode"] == "SERVER_AUTHENTICATION"
    assert redis["tier"] == "STANDARD_HA" and redis["connectMode"] == "PRIVATE_SERVICE_ACCESS"


def test_redis_maintenance_is_in_the_chosen_window_and_snapshots_follow_the_config(
        plan, platform_of):
    def basic(p):
        p["cache"].update(tier="BASIC", maintenanceWindow={"day": "TUESDAY", "hour": 2})

    redis = plan(platform_of(basic)).one("gcp:redis/instance:Instance").inputs
    (window,) = redis["maintenancePolicy"]["weeklyMaintenanceWindows"]
    assert window["day"] == "TUESDAY" and window["startTime"] == {"hours": 2, "minutes": 0}
    assert redis["persistenceConfig"] == {"persistenceMode": "DISABLED"}

    def snapshots(p):
        p["cache"]["rdbSnapshotPeriod"] = "SIX_HOURS"

    redis = plan(platform_of(snapshots)).one("gcp:redis/instance:Instance").inputs
    assert redis["persistenceConfig"] == {"persistenceMode": "RDB", "rdbSnapshotPeriod": "SIX_HOURS"}
    default = plan(platform_of()).one("gcp:redis/instance:Instance").inputs
    assert default["maintenancePolicy"]["weeklyMaintenanceWindows"][0]["day"] == "SUNDAY"


def test_make_plan_says_what_a_basic_cache_means(tmp_path):
    import subprocess
    import sys

    import yaml
    config = yaml.safe_load(Path("Pulumi.dev.yaml").read_text())
    config["config"]["sdfleet:platform"]["cache"]["tier"] = "BASIC"
    stack = tmp_path / "Pulumi.basic.yaml"
    stack.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "tools.plan", "--stack", "basic",
                           "--config-file", str(stack)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    notes = [line for line in done.stderr.splitlines() if line.startswith("make plan: note:")]
    assert len(notes) == 1 and "Sunday 03:00-04:00 UTC" in notes[0] and "rebuild" in notes[0]


def test_redis_auth_string_only_in_secret_manager(dev_update):
    versions = dev_update.of_type("gcp:secretmanager/secretVersion:SecretVersion")
    assert {v.name for v in versions} == {"sdfleet-redis-auth-v", "sdfleet-redis-ca-v"}
    assert all(v.inputs["secretData"] == "[secret]" for v in versions)
    # The AUTH string the mock returns must not appear anywhere else, in any form.
    for r in dev_update.resources:
        if r.type != "gcp:secretmanager/secretVersion:SecretVersion":
            assert "offline-preview" not in json.dumps(r.inputs), r.name
    readers = {m.inputs["member"] for m in dev_update.of_type(
        "gcp:secretmanager/secretIamMember:SecretIamMember")}
    assert readers == {f"serviceAccount:sdfleet-{w}@example-sdfleet-project.iam.gserviceaccount.com"
                       for w in ("router", "fn-allocator", "fn-culler")}


# --- Registry and images -----------------------------------------------------------------------

def test_images_default_to_artifact_registry(dev_update):
    repo = next(r for r in dev_update.of_type("gcp:artifactregistry/repository:Repository") if r.name == "sdfleet-images").inputs
    assert repo["format"] == "DOCKER"
    image = _container(_pod(dev_update), "webui")["image"]
    # Tagged by the content hash of what the stack builds (components/images.py).
    assert image == ("us-central1-docker.pkg.dev/example-sdfleet-project/sdfleet-images/"
                     f"webui-automatic1111:{content_hash('webui-automatic1111')}")
    router = dev_update.one(DEPLOYMENT, "router").inputs["spec"]["template"]["spec"]
    assert router["containers"][0]["image"].endswith(
        f"/sdfleet-images/router:{content_hash('router')}")
    members = dev_update.of_type("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember")
    readers = [r for r in members if r.inputs["role"] == "roles/artifactregistry.reader"
               and r.inputs["repository"] == "sdfleet-images"]
    assert len(readers) == 3  # the system pool and both GPU pools
    writers = [r for r in members if r.inputs["role"] == "roles/artifactregistry.writer"]
    assert [w.inputs["member"] for w in writers] == [
        "serviceAccount:sdfleet-images-builder@example-sdfleet-project.iam.gserviceaccount.com"]


def test_prebuilt_image_wins_and_is_not_built(plan, platform_of):
    result = plan(platform_of(lambda p: p.setdefault("images", {}).setdefault(
        "prebuilt", {}).update({"webui-automatic1111": "example.com/my/webui:7"})))
    assert _container(_pod(result), "webui")["image"] == "example.com/my/webui:7"
    builds = {c.name for c in result.of_type("command:local:Command")}
    assert "sdfleet-images-webui-automatic1111" not in builds
    assert "sdfleet-images-router" in builds


# --- Agones --------------------------------------------------------------------------------------

def test_agones_release_is_pinned_and_internal(dev_plan):
    release = dev_plan.one(HELM, "agones").inputs
    assert release["chart"] == "agones" and release["version"] == "1.50.0"
    assert release["repositoryOpts"]["repo"] == "https://agones.dev/chart/stable"
    values = release["values"]["agones"]
    assert values["allocator"]["service"]["serviceType"] == "ClusterIP"
    assert values["allocator"]["disableMTLS"] is False
    assert values["ping"]["install"] is False
    for part in ("controller", "extensions", "allocator"):
        assert values[part]["nodeSelector"] == {"sdfleet.dev/pool": "system"}
    assert release["values"]["gameservers"]["namespaces"] == ["sdfleet-webui"]
    assert "ScheduledAutoscaler=true" in values["featureGates"]


def test_no_load_balancer_service_anywhere(dev_plan):
    for r in dev_plan.of_type("kubernetes:core/v1:Service"):
        assert r.inputs["spec"].get("type", "ClusterIP") == "ClusterIP", r.name
    for r in dev_plan.of_type(HELM):
        text = json.dumps(r.inputs.get("values", {}))
        assert '"serviceType": "LoadBalancer"' not in text


# --- Fleet, autoscaler, placeholders ---------------------------------------------------------------

def test_fleet_pod_template(dev_plan):
    fleet = dev_plan.one(FLEET).inputs
    spec = fleet["spec"]["template"]["spec"]
    assert spec["ports"] == [{"name": "webui", "portPolicy": "None", "container": "user-sync",
                              "containerPort": 7860, "protocol": "TCP"}]
    # The game server container has its own liveness probe, so Agones's SDK health loop
    # (started only by the /gshealthz probe Agones adds to a container without one) never
    # runs: the Fleet must not pretend it does.
    assert spec["health"] == {"disabled": True}
    assert "livenessProbe" in _container(spec["template"]["spec"], spec["container"])
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"sdfleet.dev/pool": "l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present",
            "effect": "NoSchedule"} in pod["tolerations"]
    webui = _container(pod, "webui")
    assert webui["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert webui["resources"]["requests"] == {"cpu": "4", "memory": "16Gi"}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert webui[probe]["exec"]["command"][:3] == ["/opt/sdfleet/venv/bin/python", "-m",
                                                        "sdfleet_webui.probe"]
    # a pod is seen started and ready within 3 s of its WebUI, and still gets 20 minutes
    for probe in ("startupProbe", "readinessProbe"):
        assert webui[probe]["periodSeconds"] <= 3
    startup = webui["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 1200
    assert _env(webui)["SDFLEET_FRAMEWORK"] == "automatic1111"
    assert _container(pod, "user-sync")["args"] == ["sdfleet_webui.trusted"]
    scratch = next(v for v in pod["volumes"] if v["name"] == "scratch")
    assert scratch["emptyDir"]["sizeLimit"] == "50Gi"
    assert all("hostPort" not in p for c in pod["containers"] for p in c.get("ports", []))


def test_autoscaler_buffer_with_peak_hours(dev_plan):
    policy = dev_plan.one(AUTOSCALER).inputs["spec"]["policy"]
    assert policy["type"] == "Chain"
    peak, default = policy["chain"]
    assert peak["type"] == "Schedule"
    assert peak["schedule"]["activePeriod"] == {"timezone": "Europe/Berlin",
                                                 "startCron": "0 8 * * 1-5", "duration": "10h"}
    assert peak["schedule"]["policy"]["buffer"]["bufferSize"] == 2
    assert default["buffer"] == {"bufferSize": 1, "minReplicas": 0, "maxReplicas": 6}


def test_autoscaler_plain_buffer_without_peak_hours(plan, platform_of):
    result = plan(platform_of(lambda p: p["fleet"].pop("peakHours")))
    policy = result.one(AUTOSCALER).inputs["spec"]["policy"]
    assert policy == {"type": "Buffer", "buffer": {"bufferSize": 1, "minReplicas": 0,
                                                   "maxReplicas": 6}}
    values = result.one(HELM, "agones").inputs["values"]["agones"]
    assert "ScheduledAutoscaler" not in values["featureGates"]


def test_fleet_and_autoscaler_depend_on_agones(dev_plan):
    release = dev_plan.one(HELM, "agones").urn
    assert release in dev_plan.one(FLEET).dependencies
    assert release in dev_plan.one(AUTOSCALER).dependencies


def test_placeholders_keep_gpu_nodes_warm_at_negative_priority(plan, platform_of, dev_plan):
    assert dev_plan.one(DEPLOYMENT, "placeholders").inputs["spec"]["replicas"] == 0
    result = plan(platform_of(lambda p: p["fleet"].update(placeholders=2)))
    deployment = result.one(DEPLOYMENT, "placeholders").inputs["spec"]
    assert deployment["replicas"] == 2
    pod = deployment["template"]["spec"]
    assert pod["priorityClassName"] == "sdfleet-placeholder"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    classes = {r.inputs["metadata"]["name"]: r.inputs["value"]
               for r in result.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")}
    assert classes["sdfleet-placeholder"] < 0 < classes["sdfleet-webui"]


# --- Model sync ---------------------------------------------------------------------------------

def test_model_sync_job_follows_the_model_list(dev_plan, plan, platform_of):
    job = dev_plan.one("kubernetes:batch/v1:Job", "model-sync")
    command = job.inputs["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command == ["/opt/sdfleet/venv/bin/python", "-m", "sdfleet_webui.fetch",
                       "--models-file", "/etc/sdfleet/models.json", "--root", "/models"]
    config = dev_plan.one("kubernetes:core/v1:ConfigMap", "model-sync").inputs
    document = json.loads(config["data"]["models.json"])
    assert document["defaultCheckpoint"] == "sdxl-base"
    assert [m["name"] for m in document["models"]] == ["sdxl-base", "sdxl-vae"]
    same = plan(platform_of(), preview=True).one("kubernetes:batch/v1:Job", "model-sync")
    assert same.name == job.name

    def add_lora(p):
        p["models"]["items"].append({"name": "detail", "kind": "lora", "source": "civitai",
                                     "civitaiVersionId": 128713})
    changed = plan(platform_of(add_lora), preview=True).one("kubernetes:batch/v1:Job", "model-sync")
    assert changed.name != job.name


def test_model_tokens_come_from_secret_keys(plan, platform_of):
    config = platform_of(**{"sdfleet:huggingfaceToken": {"secure": "v1:abc"}})
    result = plan(config)
    secret = result.one("kubernetes:core/v1:Secret", "model-sync-tokens").inputs
    assert secret["stringData"] == "[secret]" or secret["stringData"]["hf-token"] == "[secret]"
    pod = result.one("kubernetes:batch/v1:Job", "model-sync").inputs["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # tokens are files, never env values
    assert not [e for e in container.get("env", []) if "TOKEN" in e["name"] or "valueFrom" in e]
    assert {"name": "tokens", "mountPath": "/var/run/sdfleet", "readOnly": True} in container["volumeMounts"]
    assert {"name": "tokens", "secret": {"secretName": "sdfleet-model-sync-tokens",
                                         "defaultMode": 0o400}} in pod["volumes"]


# --- Invariants -------------------------------------------------------------------------------------------

def test_no_public_iam_member_anywhere(dev_update):
    for r in dev_update.resources:
        for value in _walk(r.inputs):
            assert value not in ("allUsers", "allAuthenticatedUsers"), r.name


def test_no_primitive_roles(dev_update):
    for r in dev_update.resources:
        role = r.inputs.get("role")
        assert role not in ("roles/owner", "roles/editor", "roles/viewer"), r.name


def test_every_kubernetes_resource_uses_the_cluster_provider(dev_update):
    provider = dev_update.one("pulumi:providers:kubernetes")
    kube = [r for r in dev_update.resources if r.type.startswith("kubernetes:")]
    assert len(kube) > 20
    for r in kube:
        assert r.provider and r.provider.startswith(provider.urn + "::"), (r.type, r.name, r.provider)


@pytest.mark.parametrize("key", ["url", "clusterName", "registry", "kubeconfig"])
def test_required_outputs_present_in_preview(dev_plan, key):
    assert key in dev_plan.outputs


def test_functions_wait_for_their_build_grants_to_apply(dev_update):
    """A gen2 build starts as the function is created; fresh grants need time to apply."""
    import subprocess

    from components.gcp.functions import IAM_SETTLE_SCRIPT, IAM_SETTLE_SECONDS
    settle = dev_update.one("command:local:Command", "fn-iam-settle")
    grants = [r for r in dev_update.resources
              if "fn-build" in r.name and r.type.endswith("IAMMember") and r.custom]
    assert len(grants) >= 4
    # Keyed by the grants: it runs again only when a grant is replaced.
    assert len(settle.inputs["triggers"]) == len(grants)
    assert all(isinstance(t, str) and t for t in settle.inputs["triggers"])
    assert IAM_SETTLE_SECONDS >= 120   # Google: "typically 2 minutes"
    for fn in dev_update.of_type(FUNCTION):
        assert settle.urn in fn.dependencies, fn.name
    proc = subprocess.run(["/bin/sh", "-c", IAM_SETTLE_SCRIPT], capture_output=True, text=True,
                          env={"SDFLEET_SETTLE_SECONDS": "0", "PATH": "/usr/bin:/bin"}, timeout=10)
    assert proc.returncode == 0 and "new IAM grants to apply" in proc.stdout
