"""GCP preflight: what a first `pulumi up` of an interactive stack needs from the project.

Reads with the deployer's own credentials (Application Default Credentials, google-auth) from
Google's REST APIs: Service Usage (APIs), Resource Manager (the project's organization),
Compute Engine (GPU quota, machine and accelerator types per zone). Nothing is changed.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from components.config.gcp import GpuPoolConfig
from tools.preflight.egress import admitted, egress_address
from tools.preflight.report import Check, failed, note, passed

# Compute Engine's regional quota metric of each accelerator (on-demand; Spot and preemptible
# VMs use the PREEMPTIBLE_ metric).
GPU_QUOTA_METRIC = {
    "nvidia-l4": "NVIDIA_L4_GPUS",
    "nvidia-tesla-t4": "NVIDIA_T4_GPUS",
    "nvidia-tesla-v100": "NVIDIA_V100_GPUS",
    "nvidia-tesla-p4": "NVIDIA_P4_GPUS",
    "nvidia-tesla-p100": "NVIDIA_P100_GPUS",
    "nvidia-tesla-a100": "NVIDIA_A100_GPUS",
    "nvidia-a100-80gb": "NVIDIA_A100_80GB_GPUS",
    "nvidia-h100-80gb": "NVIDIA_H100_GPUS",
}
# What must be on before the stack can enable the rest itself (components/gcp/apis.py).
BOOTSTRAP_APIS = ("serviceusage.googleapis.com", "cloudresourcemanager.googleapis.com",
                  "compute.googleapis.com")
QUOTA_PAGE = "https://console.cloud.google.com/iam-admin/quotas?project={project}"


@dataclass
class GcpApi:
    """GET on Google's REST APIs through an authorized session; `root` replaces
    `https://<host>` (tests point it at a local fake)."""

    session: object
    root: str | None = None

    def get(self, host: str, path: str) -> tuple[int, dict]:
        url = f"{self.root}/{host}{path}" if self.root else f"https://{host}{path}"
        answer = self.session.get(url, timeout=20)
        try:
            body = answer.json()
        except ValueError:
            body = {}
        return answer.status_code, body


def _apis(api: GcpApi, project: str) -> list[Check]:
    checks = []
    for service in BOOTSTRAP_APIS:
        status, body = api.get("serviceusage.googleapis.com",
                               f"/v1/projects/{project}/services/{service}")
        if status == 200 and body.get("state") == "ENABLED":
            checks.append(passed(f"API {service}", "enabled"))
        elif status == 403:
            checks.append(failed(f"API {service}", "cannot read the project's services (403)",
                                 "grant yourself roles/serviceusage.serviceUsageConsumer or "
                                 "Owner on the project, and check gcloud auth application-default login"))
        else:
            checks.append(failed(f"API {service}", "not enabled; the stack enables the others "
                                 "itself but needs this one first",
                                 f"gcloud services enable {service} --project {project}"))
    return checks


def _organization(api: GcpApi, project: str, platform) -> Check:
    status, body = api.get("cloudresourcemanager.googleapis.com", f"/v3/projects/{project}")
    if status != 200:
        return failed("organization", f"cannot read project {project} ({status})",
                      f"check the project id and `gcloud projects describe {project}`")
    parent = body.get("parent", "")
    custom_client = platform.access is not None and platform.access.oauth_client_id
    if parent.startswith(("organizations/", "folders/")):
        return passed("organization", f"project is under {parent}")
    if custom_client:
        return passed("organization", "no organization; access.oauthClientId is set (custom "
                                      "OAuth client)")
    return failed("organization", "the project belongs to no organization, and IAP's "
                  "Google-managed OAuth client works only inside one",
                  "create a custom OAuth client and set access.oauthClientId (README: "
                  "'custom OAuth client'), or move the project into an organization")


def _pool_zones(pool: GpuPoolConfig, platform, region: str) -> list[str]:
    return list(pool.zones or platform.cluster.zones or [f"{region}-a"])


def _gpu_quota(api: GcpApi, project: str, region: str, pools: list[GpuPoolConfig]) -> list[Check]:
    status, body = api.get("compute.googleapis.com", f"/compute/v1/projects/{project}/regions/{region}")
    if status != 200:
        return [failed("GPU quota", f"cannot read region {region} of {project} ({status})",
                       "enable compute.googleapis.com and check gcp:region")]
    quotas = {q["metric"]: q for q in body.get("quotas", [])}
    wanted: dict[str, int] = {}
    for pool in pools:
        metric = ("PREEMPTIBLE_" if pool.spot else "") + GPU_QUOTA_METRIC[pool.accelerator]
        wanted[metric] = wanted.get(metric, 0) + pool.max_nodes * pool.accelerator_count
    checks = []
    for metric, count in sorted(wanted.items()):
        quota = quotas.get(metric, {"limit": 0, "usage": 0})
        free = float(quota.get("limit", 0)) - float(quota.get("usage", 0))
        name = f"GPU quota {metric} in {region}"
        if free >= count:
            checks.append(passed(name, f"{free:g} free, the pools may use {count}"))
        elif free >= 1:
            checks.append(note(name, f"{free:g} free, the pools may grow to {count}: nodes past "
                                     f"{free:g} GPUs will not start",
                               QUOTA_PAGE.format(project=project) + f" (filter {metric})"))
        else:
            checks.append(failed(name, f"{free:g} free (new projects start at 0): no GPU node "
                                       "can start",
                                 QUOTA_PAGE.format(project=project)
                                 + f" → {metric}, region {region}: request at least {count}"))
    return checks


def _machine_types(api: GcpApi, project: str, platform, region: str) -> list[Check]:
    checks = []
    for pool in platform.gpu_pools:
        for zone in _pool_zones(pool, platform, region):
            base = f"/compute/v1/projects/{project}/zones/{zone}"
            name = f"pool {pool.name} in {zone}"
            status, _ = api.get("compute.googleapis.com", f"{base}/machineTypes/{pool.machine_type}")
            if status != 200:
                checks.append(failed(name, f"machine type {pool.machine_type} does not exist "
                                           f"in {zone}",
                                     f"gcloud compute machine-types list --zones {zone} "
                                     f"--filter 'name~^{pool.machine_type.split('-')[0]}-'"))
                continue
            status, _ = api.get("compute.googleapis.com",
                                f"{base}/acceleratorTypes/{pool.accelerator}")
            if status != 200:
                checks.append(failed(name, f"accelerator {pool.accelerator} is not offered in {zone}",
                                     f"gcloud compute accelerator-types list --filter "
                                     f"'name={pool.accelerator}' and set the pool's zones"))
                continue
            checks.append(passed(name, f"{pool.machine_type} with {pool.accelerator} offered"))
    return checks


def _authorized_networks(platform, address: str | None) -> Check:
    ranges = [n.cidr for n in platform.cluster.authorized_networks]
    name = "cluster API from here"
    if address is None:
        return note(name, "could not tell this machine's public address; check that "
                          "cluster.authorizedNetworks holds it")
    if admitted(address, ranges):
        return passed(name, f"{address} is inside cluster.authorizedNetworks")
    return failed(name, f"{address} is outside cluster.authorizedNetworks "
                        f"({', '.join(ranges) or 'empty'}): `pulumi up` could not reach the "
                        "cluster's API",
                  f"pulumi config set --path 'sdfleet:platform.cluster.authorizedNetworks"
                  f"[{len(ranges)}]' '{{\"name\": \"deployer\", \"cidr\": \"{address}/32\"}}'")


def _domain(platform) -> Check:
    domain = platform.access.domain if platform.access else None
    if not domain:
        return note("domain", "no access.domain")
    try:
        addresses = sorted({a[4][0] for a in socket.getaddrinfo(domain, 443)})
    except OSError:
        return note("domain", f"{domain} does not resolve yet; the certificate is issued once it does",
                    f"after `pulumi up`, create an A record {domain} → the stack's ingressIp output")
    return passed("domain", f"{domain} resolves to {', '.join(addresses)} (the certificate needs "
                            "the stack's ingressIp among them)")


def run(stack_config, api: GcpApi, address: str | None | bool = True) -> list[Check]:
    p, project, region = stack_config.platform, stack_config.gcp_project, stack_config.gcp_region
    checks = _apis(api, project)
    checks.append(_organization(api, project, p))
    checks += _gpu_quota(api, project, region, list(p.gpu_pools))
    checks += _machine_types(api, project, p, region)
    checks.append(_authorized_networks(p, egress_address() if address is True else address))
    checks.append(_domain(p))
    return checks


def default_api() -> GcpApi:
    """The deployer's Application Default Credentials, read-only scope. SDFLEET_GCP_API_ROOT
    sends every call to one root instead (a local fake of the APIs, like AWS_ENDPOINT_URL)."""
    import os

    import google.auth
    import requests
    from google.auth.transport.requests import AuthorizedSession

    root = os.environ.get("SDFLEET_GCP_API_ROOT")
    if root:
        return GcpApi(requests.Session(), root.rstrip("/"))

    credentials, _ = google.auth.default(
        scopes=["https://www.googleapis.com/auth/cloud-platform.read-only"])
    return GcpApi(AuthorizedSession(credentials))
