"""The only way in: a global external Application Load Balancer, owned by this program, with
IAP on its one backend service, in front of the router's standalone NEGs.

Static IP -> forwarding rule :443 -> target HTTPS proxy (Google-managed certificate for the
configured domain) -> URL map -> backend service (IAP on, health check on the router's
`/healthz`, a timeout long enough for a generation) -> the router Service's zonal NEGs. Port 80
has its own forwarding rule, proxy and URL map that only redirect to HTTPS.

Because the program makes the backend service, the IAP audience
(`/projects/<number>/global/backendServices/<generated id>`) is known in the same `pulumi up`,
and `roles/iap.httpsResourceAccessor` is granted on this backend service only.

The NEGs are made by GKE's NEG controller, not by Pulumi: the router Service's annotation
`cloud.google.com/neg: {"exposed_ports": {"80": {"name": <neg>}}}` names them (GKE docs,
"Container-native load balancing through standalone zonal NEGs"), and the controller creates
one in each zone that has cluster nodes, asynchronously, once the Service exists, before and
independently of any endpoint (kubernetes/ingress-gce pkg/neg/syncers/transaction.go,
`syncInternalImpl`: `ensureNetworkEndpointGroups` on init and on a zone change, zones from the
nodes' zone getter). A data-source lookup (`gcp.compute.getNetworkEndpointGroup`) fails when
it runs before the controller is done and never retries, so it cannot make one `pulumi up`
reliable. Instead a `local.Command`, made after the Service, polls `gcloud compute
network-endpoint-groups list` until the NEGs exist and prints their self links; the backend
service takes them from its output, so Pulumi orders Service -> NEGs -> backend service ->
URL map -> proxy -> forwarding rule in one run. The Service itself is not awaited
(`pulumi.com/skipAwait`): pulumi-kubernetes would wait for Ready endpoints (its Service await
logic: "there are no 'not ready' endpoints"), but the router's pods need the IAP audience,
which exists only once the backend service does. A zone that gets its first system node only
could be left out, so the system pool starts with a node in every zone it spans and the wait
takes one NEG per zone of that pool (its `node_locations`); the controller keeps a zone's NEG
when the autoscaler later empties that zone.

Which backend kind: EXTERNAL_MANAGED (the global external Application Load Balancer) supports
IAP with zonal NEGs (IAP docs, "Enable IAP for load balancers": instance groups, zonal NEGs,
serverless and internet NEGs), and its proxies reach zonal-NEG backends from the health-check
ranges the firewall admits (Cloud Load Balancing docs, "Firewall rules").

Compute resources are hand-registered (`ComputeResource`, checked against the typed SDK
classes in tests/program/gcp/test_gcp_compute_guard.py) to keep `make plan` within budget.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp
from pulumi_command import local

from components.config import AccessConfig, WebuiConfig
from components.gcp.compute import ComputeResource

IAP_ACCESSOR_ROLE = "roles/iap.httpsResourceAccessor"
NEG_WAIT_MINUTES = 20

NEG_WAIT_SCRIPT = """set -eu
deadline=$(( $(date +%s) + SDFLEET_WAIT_SECONDS ))
while :; do
  found=$(gcloud compute network-endpoint-groups list --project="$SDFLEET_PROJECT" \
    --filter="name=$SDFLEET_NEG_NAME" --format='value(selfLink)')
  missing=""
  for zone in $(echo "$SDFLEET_ZONES" | tr ',' ' '); do
    case "$found" in */zones/$zone/*) ;; *) missing="$missing $zone" ;; esac
  done
  if [ -n "$found" ] && [ -z "$missing" ]; then printf '%s\\n' "$found"; exit 0; fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "sdfleet: no NEG named $SDFLEET_NEG_NAME in zone(s)${missing:- $SDFLEET_ZONES} after \
$SDFLEET_WAIT_SECONDS s; check the router Service's cloud.google.com/neg-status annotation \
(kubectl -n $SDFLEET_NAMESPACE describe service) and that the system pool has a node there" >&2
    exit 1
  fi
  echo "sdfleet: waiting for GKE's NEG controller to create $SDFLEET_NEG_NAME in:${missing:- $SDFLEET_ZONES}" >&2
  sleep 10
done
""".replace("SDFLEET_WAIT_SECONDS ))", f"{NEG_WAIT_MINUTES * 60} ))").replace(
    "$SDFLEET_WAIT_SECONDS s", f"{NEG_WAIT_MINUTES * 60} s")


def neg_backends(stdout: str) -> list[dict]:
    """Backend entries from the NEG self links the wait command prints, one a line."""
    links = sorted({line.strip() for line in (stdout or "").splitlines() if line.strip()})
    # Rate mode is the one zonal GCE_VM_IP_PORT NEGs take behind an Application LB.
    return [{"group": link, "balancingMode": "RATE", "maxRatePerEndpoint": 1000} for link in links]


@dataclass(frozen=True)
class LoadBalancerArgs:
    """What the load balancer fronts and who may pass it."""

    access: AccessConfig
    webui: WebuiConfig
    project: str
    project_number: pulumi.Input[str]
    labels: dict[str, str]
    neg_name: str                       # the router Service's standalone NEG
    router_namespace: str
    router_service: pulumi.Resource     # the NEGs exist only after it
    # Zones of the nodes the router runs on (the system pool's node_locations): one NEG each.
    zones: pulumi.Input[list]
    oauth_client_secret: pulumi.Input[str] | None = None  # with access.oauthClientId only


class IapLoadBalancer(pulumi.ComponentResource):
    """`sdfleet:gcp:IapLoadBalancer`."""

    def __init__(self, name: str, args: LoadBalancerArgs,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:IapLoadBalancer", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        access, webui, project, labels = args.access, args.webui, args.project, args.labels
        neg_name = args.neg_name

        def compute(kind: str, suffix: str, props: dict, outputs: tuple[str, ...] = (),
                    depends_on: list | None = None) -> ComputeResource:
            return ComputeResource(kind, f"{name}-{suffix}", {"name": f"{name}-{suffix}",
                                                              "project": project, **props},
                                   outputs=outputs, opts=pulumi.ResourceOptions(
                                       parent=self, depends_on=depends_on or []))

        self.address = compute("GlobalAddress", "ip", {"labels": labels}, outputs=("address",))

        self.negs = local.Command(
            f"{name}-negs", create=NEG_WAIT_SCRIPT, logging="stderr",
            environment={"SDFLEET_PROJECT": project, "SDFLEET_NEG_NAME": neg_name,
                         "SDFLEET_NAMESPACE": args.router_namespace,
                         "SDFLEET_ZONES": pulumi.Output.from_input(args.zones).apply(
                             lambda zones: ",".join(zones or []))},
            triggers=[neg_name, args.zones],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.router_service],
                                        custom_timeouts=pulumi.CustomTimeouts(
                                            create=f"{NEG_WAIT_MINUTES + 5}m")))

        self.health_check = compute("HealthCheck", "hc", {
            "description": "router /healthz on the port each NEG endpoint serves",
            "httpHealthCheck": {"portSpecification": "USE_SERVING_PORT", "requestPath": "/healthz"},
            "checkIntervalSec": 10, "timeoutSec": 5})

        iap: dict = {"enabled": True}
        if access.oauth_client_id is not None:
            iap.update(oauth2ClientId=access.oauth_client_id,
                       oauth2ClientSecret=pulumi.Output.secret(args.oauth_client_secret))
        self.backend = compute("BackendService", "backend", {
            "description": "sdfleet router (IAP)", "loadBalancingScheme": "EXTERNAL_MANAGED",
            "protocol": "HTTP", "timeoutSec": webui.request_timeout_seconds,
            "connectionDrainingTimeoutSec": 60, "healthChecks": self.health_check.id,
            "backends": self.negs.stdout.apply(neg_backends), "iap": iap,
            "logConfig": {"enable": True, "sampleRate": 1.0}}, outputs=("generatedId",))

        self.certificate = compute("ManagedSslCertificate", "cert", {
            "type": "MANAGED", "managed": {"domains": [access.domain]}})
        self.url_map = compute("URLMap", "https-map", {"defaultService": self.backend.id})
        self.https_proxy = compute("TargetHttpsProxy", "https-proxy", {
            "urlMap": self.url_map.id, "sslCertificates": [self.certificate.id]})
        self.https_rule = compute("GlobalForwardingRule", "https-rule", {
            "target": self.https_proxy.id, "ipAddress": self.address.out("address"),
            "ipProtocol": "TCP", "portRange": "443", "loadBalancingScheme": "EXTERNAL_MANAGED",
            "labels": labels})

        self.redirect_map = compute("URLMap", "redirect-map", {"defaultUrlRedirect": {
            "httpsRedirect": True, "redirectResponseCode": "MOVED_PERMANENTLY_DEFAULT",
            "stripQuery": False}})
        self.http_proxy = compute("TargetHttpProxy", "redirect-proxy", {"urlMap": self.redirect_map.id})
        self.http_rule = compute("GlobalForwardingRule", "redirect-rule", {
            "target": self.http_proxy.id, "ipAddress": self.address.out("address"),
            "ipProtocol": "TCP", "portRange": "80", "loadBalancingScheme": "EXTERNAL_MANAGED",
            "labels": labels})

        # The audience IAP signs into its JWT for this backend service (IAP docs, "Securing
        # your app with signed headers": /projects/PROJECT_NUMBER/global/backendServices/ID).
        self.audience = pulumi.Output.all(args.project_number, self.backend.out("generatedId")).apply(
            lambda args: f"/projects/{args[0]}/global/backendServices/{int(args[1])}")

        # On this backend service only (never project-wide IAP access).
        self.accessors = [
            gcp.iap.WebBackendServiceIamMember(
                f"{name}-access-{i}", project=project, web_backend_service=self.backend.out("name"),
                role=IAP_ACCESSOR_ROLE, member=member, opts=child)
            for i, member in enumerate(access.members)
        ]
        self.url = f"https://{access.domain}"
        self.register_outputs({"url": self.url, "address": self.address.out("address"),
                               "audience": self.audience})
