"""The load balancer the program owns, IAP on its backend service, and the audience derived
from this run's backend service."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from components.gcp.load_balancer import NEG_WAIT_SCRIPT, neg_backends
from components.k8s.router import ROUTER_PORT
from tests.program.conftest import SECRET_MARK
from tools import preview_data
from tools.preview import ROOT

BACKEND = "gcp:compute/backendService:BackendService"
URL_MAP = "gcp:compute/uRLMap:URLMap"
RULE = "gcp:compute/globalForwardingRule:GlobalForwardingRule"
COMMAND = "command:local:Command"
SERVICE = "kubernetes:core/v1:Service"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
FUNCTION = "gcp:cloudfunctionsv2/function:Function"
IAP_MEMBER = "gcp:iap/webBackendServiceIamMember:WebBackendServiceIamMember"
FIREWALL = "gcp:compute/firewall:Firewall"


def _depends_on(resource, urn: str) -> bool:
    return urn in resource.dependencies or any(
        urn in urns for urns in resource.property_dependencies.values())


def test_https_chain_from_static_ip_to_the_backend_service(dev_update):
    backend = dev_update.one(BACKEND)
    hc = dev_update.one("gcp:compute/healthCheck:HealthCheck")
    assert backend.inputs["loadBalancingScheme"] == "EXTERNAL_MANAGED"
    assert backend.inputs["iap"] == {"enabled": True}
    assert backend.inputs["timeoutSec"] == 3600
    assert backend.inputs["healthChecks"] == hc.id
    assert hc.inputs["httpHealthCheck"] == {"portSpecification": "USE_SERVING_PORT",
                                            "requestPath": "/healthz"}
    https_map = dev_update.one(URL_MAP, "https-map")
    assert https_map.inputs["defaultService"] == backend.id
    cert = dev_update.one("gcp:compute/managedSslCertificate:ManagedSslCertificate")
    assert cert.inputs["managed"] == {"domains": ["sd.example.com"]}
    proxy = dev_update.one("gcp:compute/targetHttpsProxy:TargetHttpsProxy")
    assert proxy.inputs["urlMap"] == https_map.id and proxy.inputs["sslCertificates"] == [cert.id]
    address = dev_update.one("gcp:compute/globalAddress:GlobalAddress", "lb-ip")
    https = dev_update.one(RULE, "https-rule").inputs
    assert (https["target"], https["portRange"], https["ipAddress"]) == (
        proxy.id, "443", "203.0.113.10")
    assert _depends_on(dev_update.one(RULE, "https-rule"), address.urn)
    assert dev_update.outputs["url"] == "https://sd.example.com"


def test_http_only_redirects_to_https(dev_update):
    redirect = dev_update.one(URL_MAP, "redirect-map").inputs
    assert redirect["defaultUrlRedirect"]["httpsRedirect"] is True
    assert "defaultService" not in redirect
    http_proxy = dev_update.one("gcp:compute/targetHttpProxy:TargetHttpProxy")
    assert http_proxy.inputs["urlMap"] == dev_update.one(URL_MAP, "redirect-map").id
    rule = dev_update.one(RULE, "redirect-rule").inputs
    assert (rule["target"], rule["portRange"]) == (http_proxy.id, "80")


def test_no_gke_ingress_objects_remain(dev_plan):
    kinds = {r.type for r in dev_plan.resources}
    for gone in ("kubernetes:networking.k8s.io/v1:Ingress",
                 "kubernetes:cloud.google.com/v1:BackendConfig",
                 "kubernetes:networking.gke.io/v1beta1:FrontendConfig",
                 "kubernetes:networking.gke.io/v1:ManagedCertificate"):
        assert gone not in kinds


def test_backends_are_the_router_services_negs_after_the_service_exists(dev_update):
    service = dev_update.one(SERVICE, "router")
    notes = service.inputs["metadata"]["annotations"]
    neg = json.loads(notes["cloud.google.com/neg"])["exposed_ports"]["80"]["name"]
    assert service.inputs["spec"]["ports"][0]["port"] == 80
    assert service.inputs["spec"]["ports"][0]["targetPort"] == ROUTER_PORT
    # Not awaited: its pods wait for the audience, which needs the NEGs (no cycle).
    assert notes["pulumi.com/skipAwait"] == "true"
    wait = dev_update.one(COMMAND, "lb-negs")
    assert wait.inputs["environment"]["SDFLEET_NEG_NAME"] == neg
    assert service.urn in wait.dependencies
    backend = dev_update.one(BACKEND)
    assert wait.urn in backend.property_dependencies["backends"]
    groups = [b["group"] for b in backend.inputs["backends"]]
    assert groups and all(g.endswith(f"/networkEndpointGroups/{neg}") for g in groups)
    assert {b["balancingMode"] for b in backend.inputs["backends"]} == {"RATE"}


def test_neg_backends_parse_the_wait_commands_output():
    out = "https://x/zones/us-central1-b/networkEndpointGroups/n\n\nhttps://x/zones/us-central1-a/networkEndpointGroups/n\n"
    assert [b["group"] for b in neg_backends(out)] == [
        "https://x/zones/us-central1-a/networkEndpointGroups/n",
        "https://x/zones/us-central1-b/networkEndpointGroups/n"]
    assert neg_backends("") == []


def _run_neg_wait(tmp_path, answers: list[str], zones: str):
    """The real script with a fake `gcloud` that answers `answers[n]` on its n-th call."""
    fake = tmp_path / "gcloud"
    count = tmp_path / "calls"
    for i, answer in enumerate(answers):
        (tmp_path / f"answer{i + 1}").write_text(answer)
    fake.write_text(f"""#!/bin/sh
n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}
echo "$@" >> {tmp_path}/args
[ -f {tmp_path}/answer$n ] && cat {tmp_path}/answer$n || cat {tmp_path}/answer{len(answers)}
""")
    fake.chmod(0o755)
    script = NEG_WAIT_SCRIPT.replace("sleep 10", "sleep 0")
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env={"PATH": f"{tmp_path}:/usr/bin:/bin", "SDFLEET_PROJECT": "p1",
                               "SDFLEET_NEG_NAME": "neg1", "SDFLEET_NAMESPACE": "ns",
                               "SDFLEET_ZONES": zones})


A = "https://x/zones/z-a/networkEndpointGroups/neg1\n"
B = "https://x/zones/z-b/networkEndpointGroups/neg1\n"


def test_neg_wait_script_polls_until_the_neg_exists_then_prints_links(tmp_path):
    proc = _run_neg_wait(tmp_path, ["", "", A], zones="z-a")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == A
    assert proc.stderr.count("waiting for GKE's NEG controller") == 2
    args = (tmp_path / "args").read_text().splitlines()
    assert args[0].split() == ["compute", "network-endpoint-groups", "list", "--project=p1",
                               "--filter=name=neg1", "--format=value(selfLink)"]


def test_neg_wait_takes_one_neg_per_zone_of_the_router_nodes(tmp_path):
    """The first zone's NEG alone is not enough: the wait goes on until every zone has one."""
    proc = _run_neg_wait(tmp_path, ["", A, A, A + B], zones="z-a,z-b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == A + B
    assert "in: z-b" in proc.stderr


def test_system_pool_starts_in_every_zone_and_the_wait_knows_them(dev_update, dev_config):
    zones = dev_config["sdfleet:platform"]["cluster"]["zones"]
    pool = next(r.inputs for r in dev_update.of_type("gcp:container/nodePool:NodePool")
                if r.inputs["name"] == "system")
    assert pool["nodeLocations"] == zones and pool["initialNodeCount"] == 1   # per zone
    wait = dev_update.one("command:local:Command", "-negs").inputs
    assert wait["environment"]["SDFLEET_ZONES"] == ",".join(zones)


def test_iap_audience_is_this_runs_backend_service(dev_update):
    backend = dev_update.one(BACKEND)
    audience = (f"/projects/{preview_data.PROJECT_NUMBER}/global/backendServices/"
                f"{preview_data.computed_outputs(BACKEND, '', {}, '', '')['generatedId']}")
    assert dev_update.outputs["iapAudience"] == audience
    router = dev_update.one(DEPLOYMENT, "router")
    verifier = next(c for c in router.inputs["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "verifier")
    assert {e["name"]: e["value"] for e in verifier["env"]}["IAP_AUDIENCE"] == audience
    assert _depends_on(router, backend.urn)
    for function in dev_update.of_type(FUNCTION):
        env = function.inputs["serviceConfig"]["environmentVariables"]
        assert env["IAP_AUDIENCE"] == audience, function.name
    # Nothing left that says to deploy twice.
    assert "nextStep" not in dev_update.outputs
    assert "unset" not in json.dumps(dev_update.outputs)


def test_preview_shows_the_audience_is_computed_by_this_run(plan, dev_config):
    preview = plan(dev_config, preview=True)
    assert preview.outputs["iapAudience"] == "(known after deployment)"


def test_iap_access_is_granted_on_the_backend_service_only(dev_update):
    backend = dev_update.one(BACKEND)
    grants = dev_update.of_type(IAP_MEMBER)
    assert sorted(g.inputs["member"] for g in grants) == ["group:artists@example.com",
                                                        "user:alice@example.com"]
    for grant in grants:
        assert grant.inputs["role"] == "roles/iap.httpsResourceAccessor"
        assert grant.inputs["webBackendService"] == "sdfleet-lb-backend"
        assert backend.urn in grant.property_dependencies["webBackendService"]
    project_iap = [m for m in dev_update.of_type("gcp:projects/iAMMember:IAMMember")
                   if m.inputs["role"].startswith("roles/iap.")]
    assert project_iap == []


def _custom_client(p: dict) -> None:
    p["access"] = {"domain": "sd.example.com", "members": ["user:someone@gmail.com"],
                   "oauthClientId": "123456789012-abc123.apps.googleusercontent.com"}


def test_custom_oauth_client_admits_outsiders_with_its_secret_as_a_secret(plan, platform_of):
    config = platform_of(_custom_client, **{"sdfleet:iapOauthClientSecret": {"secure": "v1:x"}})
    result = plan(config)
    iap = result.one(BACKEND).inputs["iap"]
    assert iap["enabled"] is True
    assert iap["oauth2ClientId"] == "123456789012-abc123.apps.googleusercontent.com"
    assert iap["oauth2ClientSecret"] == SECRET_MARK
    assert [g.inputs["member"] for g in result.of_type(IAP_MEMBER)] == ["user:someone@gmail.com"]


def _write(tmp_path, edit) -> str:
    import yaml

    config = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    edit(config["config"])
    path = tmp_path / "Pulumi.custom.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=120)


@pytest.mark.parametrize("secret, message", [
    (None, "sdfleet:iapOauthClientSecret: missing"),
    ("plain-text", "sdfleet:iapOauthClientSecret: a plaintext value"),
])
def test_custom_oauth_client_without_a_secret_secret_exits_2(tmp_path, secret, message):
    def edit(config):
        _custom_client(config["sdfleet:platform"])
        if secret is not None:
            config["sdfleet:iapOauthClientSecret"] = secret
    proc = _plan("--config-file", _write(tmp_path, edit))
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_router_port_admits_only_the_load_balancer_inside_the_vpc(dev_update):
    allow = dev_update.one(FIREWALL, "health-checks").inputs
    assert sorted(allow["sourceRanges"]) == ["130.211.0.0/22", "35.191.0.0/16"]
    assert allow["allows"] == [{"protocol": "tcp", "ports": [str(ROUTER_PORT)]}]
    deny = dev_update.one(FIREWALL, "deny-internal-to-router").inputs
    internal = dev_update.one(FIREWALL, "allow-internal").inputs
    # Ahead of allow-internal, from every internal range (and the functions' connector) ...
    assert deny["priority"] < internal["priority"]
    assert set(internal["sourceRanges"]) < set(deny["sourceRanges"])
    assert "10.31.0.0/28" in deny["sourceRanges"]
    assert deny["denies"] == [{"protocol": "tcp", "ports": [str(ROUTER_PORT)]}]
    # ... to the nodes the router runs on (the system pool's account).
    system = dev_update.one("gcp:container/nodePool:NodePool", "system-pool")
    assert deny["targetServiceAccounts"] == [system.inputs["nodeConfig"]["serviceAccount"]]
    # The load balancer's ranges are not in the deny rule.
    assert not set(allow["sourceRanges"]) & set(deny["sourceRanges"])
