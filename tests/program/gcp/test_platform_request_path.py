"""The GCP platform's request path as planned: the router (its Deployment, identity and the
WebUI pods' single ingress) and the two functions (their accounts, invokers, schedule,
archives and rights in the fleet namespace)."""

from __future__ import annotations

import json

from tests.program.gcp.test_platform import DEPLOYMENT, FUNCTION, _container, _env
from tools.preview_data import PROJECT_NUMBER

# --- Router ----------------------------------------------------------------------------------------

def test_router_deployment_service_and_budget(dev_update):
    deployment = dev_update.one(DEPLOYMENT, "router").inputs["spec"]
    assert deployment["replicas"] == 3
    pod = deployment["template"]["spec"]
    assert pod["nodeSelector"] == {"sdfleet.dev/pool": "system"}
    router = _container(pod, "router")
    env = _env(router)
    assert env["REDIS_TLS"] == "true" and env["REDIS_PASSWORD_FILE"].startswith("/var/run/")
    base = "https://us-central1-example-sdfleet-project.cloudfunctions.net/sdfleet-fn-allocator"
    assert env["ALLOCATOR_URL"] == f"{base}/allocate" and env["ALLOCATOR_AUDIENCE"] == base
    assert env["PROXY_READ_TIMEOUT"] == "3600s" and env["CLIENT_MAX_BODY_SIZE"] == "200m"
    assert _env(_container(pod, "verifier"))["IAP_AUDIENCE"].startswith("/projects/123456789012/")
    pdb = dev_update.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    service = dev_update.one("kubernetes:core/v1:Service", "router").inputs
    assert json.loads(service["metadata"]["annotations"]["cloud.google.com/neg"]) == {
        "exposed_ports": {"80": {"name": "sdfleet-router"}}}
    assert service["spec"]["type"] == "ClusterIP"


def test_router_workload_identity(dev_update):
    ksa = dev_update.one("kubernetes:core/v1:ServiceAccount", "router").inputs["metadata"]
    gsa = "sdfleet-router@example-sdfleet-project.iam.gserviceaccount.com"
    assert ksa["annotations"] == {"iam.gke.io/gcp-service-account": gsa}
    binding = dev_update.one("gcp:serviceaccount/iAMMember:IAMMember", "router-wi").inputs
    assert binding["role"] == "roles/iam.workloadIdentityUser"
    assert binding["member"] == "serviceAccount:example-sdfleet-project.svc.id.goog[sdfleet-system/sdfleet-router]"


def test_webui_pods_accept_only_router_traffic(dev_plan):
    policy = dev_plan.one("kubernetes:networking.k8s.io/v1:NetworkPolicy", "only-router").inputs
    assert policy["metadata"]["namespace"] == "sdfleet-webui"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["podSelector"] == {"matchLabels": {"sdfleet.dev/app": "router"}}
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": "sdfleet-system"}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 7860}]


# --- Functions ------------------------------------------------------------------------------------------

def test_two_internal_only_functions_with_their_own_accounts(dev_update):
    functions = {f.name: f.inputs for f in dev_update.of_type(FUNCTION)}
    assert set(functions) == {"sdfleet-fn-allocator", "sdfleet-fn-culler"}
    accounts = set()
    for name, fn in functions.items():
        service = fn["serviceConfig"]
        assert service["ingressSettings"] == "ALLOW_INTERNAL_ONLY"
        assert service["vpcConnectorEgressSettings"] == "PRIVATE_RANGES_ONLY"
        assert service["secretEnvironmentVariables"][0]["key"] == "REDIS_PASSWORD"
        assert "REDIS_PASSWORD" not in service["environmentVariables"]
        assert service["environmentVariables"]["K8S_API_URL"] == "https://172.16.0.2"
        assert fn["buildConfig"]["runtime"] == "python311"
        accounts.add(service["serviceAccountEmail"])
    assert len(accounts) == 2
    assert functions["sdfleet-fn-allocator"]["buildConfig"]["entryPoint"] == "allocate"
    assert functions["sdfleet-fn-culler"]["buildConfig"]["entryPoint"] == "cull"


def test_the_culler_counts_usage_in_the_gpus_a_pod_holds(plan, platform_of):
    """The culler's usage is GPU-seconds: a pod holds its node's GPUs, or their share on a
    time-shared node (the fleet's pool)."""
    def culler_env(config):
        return next(f for f in plan(config).of_type(FUNCTION) if f.name.endswith("culler")).inputs[
            "serviceConfig"]["environmentVariables"]

    assert float(culler_env(platform_of())["GPUS_PER_POD"]) == 1.0

    def shared(p):
        p["fleet"]["gpuPool"] = "t4-shared"  # one T4 shared by two pods (Pulumi.dev.yaml)

    assert float(culler_env(platform_of(shared))["GPUS_PER_POD"]) == 0.5


def test_only_the_router_invokes_the_allocator_and_only_the_scheduler_the_culler(dev_update):
    invokers = {m.inputs["name"]: m.inputs["member"] for m in dev_update.of_type(
        "gcp:cloudrunv2/serviceIamMember:ServiceIamMember")}
    sa = "@example-sdfleet-project.iam.gserviceaccount.com"
    assert invokers == {"sdfleet-fn-allocator": f"serviceAccount:sdfleet-router{sa}",
                        "sdfleet-fn-culler": f"serviceAccount:sdfleet-fn-cull-scheduler{sa}"}


def test_scheduler_calls_culler_every_minute_with_oidc(dev_update):
    job = dev_update.one("gcp:cloudscheduler/job:Job").inputs
    assert job["schedule"] == "* * * * *"
    target = job["httpTarget"]
    # Cloud Run's deterministic service URL (SERVICE-PROJECT_NUMBER.REGION.run.app): Cloud
    # Scheduler's calls count as internal traffic only on a run.app URL, and the culler takes
    # internal traffic only.
    url = f"https://sdfleet-fn-culler-{PROJECT_NUMBER}.us-central1.run.app"
    assert target["uri"] == f"{url}/cull" and target["httpMethod"] == "POST"
    assert target["oidcToken"] == {"serviceAccountEmail":
                                   "sdfleet-fn-cull-scheduler@example-sdfleet-project.iam.gserviceaccount.com",
                                   "audience": url}
    env = next(f for f in dev_update.of_type(FUNCTION) if f.name.endswith("culler")).inputs[
        "serviceConfig"]["environmentVariables"]
    assert env["CULL_INVOKER_AUDIENCE"] == url
    assert env["CULL_INVOKER_EMAILS"] == target["oidcToken"]["serviceAccountEmail"]
    culler = next(f for f in dev_update.of_type(FUNCTION) if f.name.endswith("culler")).inputs
    assert culler["serviceConfig"]["ingressSettings"] == "ALLOW_INTERNAL_ONLY"


def test_function_archive_has_shared_code():
    from components.gcp.functions import _source_files, source_archive
    files = _source_files("allocator")
    assert "main.py" in files and "requirements.txt" in files
    assert any(name.startswith("shared/") for name in files)
    assert not any("__pycache__" in name for name in files)
    _, digest = source_archive("allocator")
    assert len(digest) == 12 and digest != source_archive("culler")[1]


def test_functions_may_only_touch_game_servers_in_the_fleet_namespace(dev_update):
    roles = {r.inputs["metadata"]["name"]: r.inputs
             for r in dev_update.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")}
    assert set(roles) == {"sdfleet-allocator", "sdfleet-culler"}
    for role in roles.values():
        assert role["metadata"]["namespace"] == "sdfleet-webui"
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
    bindings = {b.inputs["metadata"]["name"]: b.inputs["subjects"][0]["name"]
                for b in dev_update.of_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")}
    assert bindings["sdfleet-allocator"].startswith("sdfleet-fn-allocator@")
    verbs = {name: {v for rule in role["rules"] if "gameservers" in rule["resources"]
                    for v in rule["verbs"]} for name, role in roles.items()}
    assert verbs == {"sdfleet-allocator": {"get", "list", "delete"},
                     "sdfleet-culler": {"get", "list", "delete", "deletecollection"}}
    allocations = [r for r in roles["sdfleet-allocator"]["rules"]
                   if r["resources"] == ["gameserverallocations"]]
    assert allocations == [{"apiGroups": ["allocation.agones.dev"],
                            "resources": ["gameserverallocations"], "verbs": ["create"]}]
