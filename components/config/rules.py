"""Cross-field rules: the checks that involve more than one field (min <= max, accelerator vs
machine family, non-overlapping CIDRs, zones inside the region, names that refer to other
entries, sections of the other cloud...), one line per problem."""

from __future__ import annotations

import ipaddress
import re
from typing import Any, Optional

from components.config.aws import AWS_VISIBILITY_MARGIN_SECONDS, SQS_MAX_VISIBILITY_SECONDS
from components.config.budgets import budget_problems
from components.config.common import AccessConfig
from components.config.errors import _path
from components.config.fields import ACCELERATOR_FAMILIES, CONFIG_KEY, member_domain
from components.config.fleet_limits import buffer_policy_problems
from components.config.gcp import FILESTORE_MIN_CAPACITY_GB
from components.config.images import ImagesConfig
from components.config.models import GCP_SECTIONS, PlatformConfig
from components.config.profiles import profile_problems
from components.registries.accelerators import family_rule_text


def cross_field_problems(p: PlatformConfig, gcp_region: Optional[str],
                         aws_region: Optional[str]) -> list[str]:
    """The rules that involve more than one field; one line per problem."""
    problems: list[str] = []

    def bad(loc: tuple, value: Any, allowed: str) -> None:
        problems.append(f"{_path(CONFIG_KEY, loc)}: {value!r} is not allowed; {allowed}")

    # Sections of the other cloud are a mistake (a copied stack file, a wrong `cloud`):
    # they would be silently ignored, so refuse them.
    for field in sorted(p.model_fields_set & (GCP_SECTIONS if p.cloud == "aws" else {"aws"})):
        key = PlatformConfig.model_fields[field].alias or field
        problems.append(f"{_path(CONFIG_KEY, (key,))}: not used by a `cloud: {p.cloud}` stack; "
                        f"remove it (or set cloud: {'gcp' if p.cloud == 'aws' else 'aws'})")

    if p.cloud == "gcp":
        if not gcp_region:
            problems.append("gcp:region: missing; set it with `pulumi config set gcp:region <region>`")
        if not p.gpu_pools:
            problems.append(f"{CONFIG_KEY}.gpuPools: empty; a GCP platform needs at least one GPU pool")
        if p.access is None:
            problems.append(f"{CONFIG_KEY}.access: missing; set access.domain and access.members "
                            "(who may sign in through IAP)")
        else:
            problems += _iap_member_problems(p.access)
    else:
        if not aws_region:
            problems.append("aws:region: missing; set it with `pulumi config set aws:region <region>`")
        if p.aws is None:
            problems.append(f"{CONFIG_KEY}.aws: missing; a `cloud: aws` stack needs the aws section")

    seen: dict[str, int] = {}
    for i, pool in enumerate(p.gpu_pools):
        if pool.name in seen:
            bad(("gpuPools", i, "name"), pool.name, f"names must be unique (gpuPools[{seen[pool.name]}])")
        seen[pool.name] = i
        if pool.min_nodes > pool.max_nodes:
            bad(("gpuPools", i, "minNodes"), pool.min_nodes,
                f"minNodes must be <= maxNodes ({pool.max_nodes})")
        family = pool.machine_type.split("-", 1)[0]
        families = ACCELERATOR_FAMILIES[pool.accelerator]
        if family not in families:
            bad(("gpuPools", i, "accelerator"), pool.accelerator,
                f"it needs machine family {'/'.join(families)} "
                f"(machineType is {pool.machine_type!r}); {family_rule_text()}")
        if pool.on_demand_fallback and not pool.spot:
            bad(("gpuPools", i, "onDemandFallback"), True,
                "it is a fallback for Spot VMs: set spot: true, or drop onDemandFallback "
                "(the pool is on-demand already)")
        for j, zone in enumerate(pool.zones):
            if gcp_region and not _zone_in_region(zone, gcp_region):
                bad(("gpuPools", i, "zones", j), zone, f"zones must be in gcp:region {gcp_region!r}, "
                    f"e.g. {gcp_region}-a")
    problems += _prebuilt_image_problems(p.images)
    if p.cloud == "aws" and p.images.preload_disk is not None:
        bad(("images", "preloadDisk"), "set", "GKE's secondary boot disks are GCP only; on EKS "
            "remove it (Karpenter nodes pull the image, SOCI-indexed or not)")
    if p.cloud == "gcp" and p.images.docker_hub_credential is not None:
        bad(("images", "dockerHubCredential"), p.images.docker_hub_credential,
            "it is for the AWS stack's ECR pull-through cache; GCP image builds pull Docker Hub "
            "bases through the stack's Artifact Registry remote repository: remove it")
    if p.system_pool.min_nodes > p.system_pool.max_nodes:
        bad(("systemPool", "minNodes"), p.system_pool.min_nodes,
            f"minNodes must be <= maxNodes ({p.system_pool.max_nodes})")
    if p.cloud == "gcp" and gcp_region:
        for j, zone in enumerate(p.cluster.zones):
            if not _zone_in_region(zone, gcp_region):
                bad(("cluster", "zones", j), zone,
                    f"zones must be in gcp:region {gcp_region!r}, e.g. {gcp_region}-a")

    ranges = [("network", "nodesCidr"), ("network", "podsCidr"), ("network", "servicesCidr"),
              ("network", "controlPlaneCidr"), ("network", "privateServicesCidr"),
              ("network", "connectorCidr")]
    nets = {r: ipaddress.ip_network(getattr(p.network, _snake(r[1]))) for r in ranges}
    for a_i, a in enumerate(ranges):
        for b in ranges[a_i + 1:]:
            if nets[a].overlaps(nets[b]):
                bad(a, str(nets[a]), f"CIDRs must not overlap; it overlaps {'.'.join(b)} ({nets[b]})")

    profile_problems(p, bad, lambda loc, text: problems.append(f"{_path(CONFIG_KEY, loc)}: {text}"))
    budget_problems(p, bad)
    if p.gpu_pools and p.fleet.gpu_pool and p.fleet.gpu_pool not in seen:
        bad(("fleet", "gpuPool"), p.fleet.gpu_pool, f"must name a GPU pool: {', '.join(seen)}")
    buffers = [(("fleet", "buffer"), p.fleet.buffer)]
    if p.fleet.peak_hours:
        buffers.append((("fleet", "peakHours", "buffer"), p.fleet.peak_hours.buffer))
    reported: set = set()
    for loc, buffer in buffers:
        for key, value, allowed in buffer_policy_problems(buffer, p.fleet.min_replicas,
                                                          p.fleet.max_replicas):
            where = loc if key == "bufferSize" else ("fleet", key)
            if (where, allowed) not in reported:
                reported.add((where, allowed))
                bad(where, value, allowed)

    minimum = FILESTORE_MIN_CAPACITY_GB[p.storage.tier]
    if p.storage.capacity_gb < minimum:
        bad(("storage", "capacityGb"), p.storage.capacity_gb,
            f"Filestore tier {p.storage.tier} needs at least {minimum} GiB")

    names = [m.name for m in p.models.items]
    for i, m in enumerate(p.models.items):
        if names.index(m.name) != i:
            bad(("models", "items", i, "name"), m.name, "model names must be unique")
        if m.kind is None and m.source != "civitai":
            problems.append(f"{_path(CONFIG_KEY, ('models', 'items', i, 'kind'))}: missing; "
                            "only CivitAI entries may leave kind out")
        if m.kind == "extension" and (m.source != "url" or not re.fullmatch(r"[0-9a-f]{40}",
                                                                             m.revision or "")):
            bad(("models", "items", i, "revision"), m.revision,
                "an extension needs source 'url' and revision set to a full 40-hex commit")
        needs = {"civitai": ("civitaiVersionId",), "url": ("url",), "huggingface": ("repo", "file")}
        for key in needs[m.source]:
            if getattr(m, _snake(key)) is None:
                problems.append(f"{_path(CONFIG_KEY, ('models', 'items', i, key))}: missing; "
                                f"source {m.source!r} needs {' and '.join(needs[m.source])}")
    if p.models.default_checkpoint is not None:
        checkpoints = [m.name for m in p.models.items if m.kind == "checkpoint"]
        if p.models.default_checkpoint not in checkpoints:
            bad(("models", "defaultCheckpoint"), p.models.default_checkpoint,
                f"must name a checkpoint in models.items: {', '.join(checkpoints) or '(none)'}")

    if p.aws is not None:
        runtimes = [r.name for r in p.aws.runtimes]
        for i, name in enumerate(runtimes):
            if runtimes.index(name) != i:
                bad(("aws", "runtimes", i, "name"), name, "runtime names must be unique")
        for i, cidr in enumerate(p.aws.cluster.public_access_cidrs):
            if ipaddress.ip_network(cidr).prefixlen < 8:
                bad(("aws", "cluster", "publicAccessCidrs", i), cidr,
                    "the EKS API is opened only to known networks (a /8 or narrower), "
                    "e.g. 203.0.113.0/24; leave the list empty for a private endpoint")
        # Karpenter sizes GPU nodes from the instance type's physical GPU count and ignores
        # the device plugin's time-slicing replicas (kubernetes-sigs/karpenter#729, #2140):
        # it would launch one node per pod and then consolidate, so the combination is refused.
        if p.aws.gpu.time_slicing_replicas is not None:
            bad(("aws", "gpu", "timeSlicingReplicas"), p.aws.gpu.time_slicing_replicas,
                "GPU time-slicing is not supported with Karpenter, which sizes nodes by physical "
                "GPUs and ignores time-slicing replicas (kubernetes-sigs/karpenter#729); leave "
                "it unset (one pod per GPU)")
        # A worker that fits no allowed node is never scheduled; one that fits only a bigger
        # node than the family's smallest pays for it on every job.
        from components.config.aws_instances import fitting_types, for_one_gpu_pod, types_of
        families = list(p.aws.gpu.families)
        for i, rt in enumerate(p.aws.runtimes):
            cpu, memory = rt.cpu, rt.memory
            if cpu is None and memory is None:
                continue
            if not fitting_types(families, cpu or "1m", memory or "1Mi"):
                largest = max(types_of(families), key=lambda t: for_one_gpu_pod(t)[1])
                room_cpu, room_mem = for_one_gpu_pod(largest)
                key = "memory" if memory is not None else "cpu"
                bad(("aws", "runtimes", i, key), memory if key == "memory" else cpu,
                    f"no node of gpu.families ({', '.join(families)}) can hold it; the most a "
                    f"worker may ask for is {room_cpu}m CPU and {room_mem}Mi memory ({largest}, "
                    f"after the system's and the queue agent's share); leave cpu and memory "
                    f"unset to fill the smallest node")
        # SQS caps a visibility timeout at 12 hours, and it must outlast the job.
        if p.aws.jobs.timeout_seconds + AWS_VISIBILITY_MARGIN_SECONDS > SQS_MAX_VISIBILITY_SECONDS:
            bad(("aws", "jobs", "timeoutSeconds"), p.aws.jobs.timeout_seconds,
                f"at most {SQS_MAX_VISIBILITY_SECONDS - AWS_VISIBILITY_MARGIN_SECONDS} s, so the "
                f"queues' visibility timeout (job timeout + {AWS_VISIBILITY_MARGIN_SECONDS} s) "
                f"fits SQS's {SQS_MAX_VISIBILITY_SECONDS} s")
    return problems


def _prebuilt_image_problems(images: ImagesConfig) -> list[str]:
    """`images.prebuilt`: known image names (components/images.py), full references."""
    from components.images import IMAGES, REFERENCE

    problems = []
    for name, reference in images.prebuilt.items():
        key = _path(CONFIG_KEY, ("images", "prebuilt", name))
        if name not in IMAGES:
            problems.append(f"{key}: unknown image {name!r}; known: {', '.join(IMAGES)}")
        elif not REFERENCE.match(reference):
            problems.append(f"{key}: {reference!r} is not a full image reference; expected "
                            "host/path[:tag][@sha256:<64 hex>], lower-case path, no spaces, e.g. "
                            "us-docker.pkg.dev/my-project/sdfleet/router:v1")
    return problems


def _iap_member_problems(access: AccessConfig) -> list[str]:
    """With the Google-managed OAuth client IAP signs in only the organization's own accounts:
    refuse members it could never admit (a custom client, `oauthClientId`, admits anyone)."""
    if access.oauth_client_id is not None:
        return []
    org = access.organization_domain
    if org is None:
        return [f"{CONFIG_KEY}.access.organizationDomain: missing; IAP's Google-managed OAuth "
                "client admits only accounts of the project's organization: set "
                "organizationDomain to that organization's domain, or set access.oauthClientId "
                "(and the secret sdfleet:iapOauthClientSecret) to admit people from outside"]
    problems = []
    for i, member in enumerate(access.members):
        if member.startswith("serviceAccount:"):
            continue  # programmatic callers present their own OIDC token
        domain = member_domain(member)
        if domain != org and not domain.endswith("." + org):
            problems.append(
                f"{_path(CONFIG_KEY, ('access', 'members', i))}: {member!r} is outside "
                f"access.organizationDomain {org!r}, and IAP's Google-managed OAuth client "
                "admits only the organization's accounts; remove it, or set access.oauthClientId "
                "(and the secret sdfleet:iapOauthClientSecret) to admit people from outside")
    return problems


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel)


def _zone_in_region(zone: str, region: str) -> bool:
    return re.fullmatch(re.escape(region) + r"-[a-z]", zone) is not None
