"""The GCP interactive platform (docs/architecture.md section 2), assembled from small components.

Request path: the program's own HTTPS load balancer with IAP -> router (verifies the IAP JWT,
looks the person up in Redis) -> the person's WebUI game server; on a miss the router calls the
allocator function, which asks Agones for a game server. The culler function, run every minute by Cloud Scheduler,
ends idle sessions. Filestore holds models and people's folders.
"""

from __future__ import annotations

from typing import Callable

import pulumi
import pulumi_gcp as gcp

from components.config import StackConfig
from components.config.budgets import budget_records
from components.gcp.apis import GROUPS_API, ProjectApis, ProjectApisArgs
from components.gcp.cache import RoutingCache, RoutingCacheArgs
from components.gcp.cluster import GkeCluster, GkeClusterArgs
from components.gcp.compute_class import CapacityClasses, CapacityClassesArgs
from components.gcp.functions import (
    ControlFunctions,
    ControlFunctionsArgs,
    FunctionSettings,
    profile_records,
    uses_groups,
)
from components.gcp.image_builds import ImageBuildArgs, ImageBuilds
from components.gcp.image_disks import PreloadDisks, PreloadDisksArgs
from components.gcp.kubernetes import ClusterProvider
from components.gcp.load_balancer import IapLoadBalancer, LoadBalancerArgs
from components.gcp.monitoring import OperatorsView, OperatorsViewArgs
from components.gcp.network import Network, NetworkArgs
from components.gcp.node_pools import (
    GpuNodePool,
    GpuNodePoolArgs,
    SystemNodePool,
    SystemNodePoolArgs,
    gpu_placement,
)
from components.gcp.registry import ImageRegistry, ImageRegistryArgs
from components.gcp.service_account import NODE_ROLES, ServiceAccount, ServiceAccountArgs, account_id
from components.gcp.storage import SharedStore, SharedStoreArgs
from components.gcp.workload_identity import WorkloadIdentity, WorkloadIdentityArgs
from components.images import webui_image as webui_image_name
from components.k8s.agones import Agones, AgonesArgs
from components.k8s.fleet import ProfileFleet, WebuiFleet, WebuiFleetArgs
from components.k8s.fleet_access import FleetAccess, FleetAccessArgs
from components.k8s.model_sync import ModelSync, ModelSyncArgs
from components.k8s.namespaces import Namespaces
from components.k8s.pods import SYSTEM_PLACEMENT
from components.k8s.router import Router, RouterSettings
from components.k8s.shared_volume import SharedVolume, SharedVolumeArgs

ROUTER_NAMESPACE = "sdfleet-system"
ROUTER_KSA = "sdfleet-router"


def apis_first(services: list[pulumi.Resource]) -> pulumi.ResourceTransformation:
    """A transformation that makes each Google Cloud resource (and each local command, which
    calls Google APIs) depend on the enabled APIs."""

    def transformation(args: pulumi.ResourceTransformationArgs):
        if not isinstance(args.resource, pulumi.CustomResource) or \
                args.type_ == "gcp:projects/service:Service" or \
                not args.type_.startswith(("gcp:", "command:")):
            return None
        return pulumi.ResourceTransformationResult(args.props, pulumi.ResourceOptions.merge(
            args.opts, pulumi.ResourceOptions(depends_on=services)))

    return transformation


class GcpPlatform(pulumi.ComponentResource):
    """`sdfleet:gcp:Platform`: everything one GCP stack stands up."""

    def __init__(self, name: str, stack: StackConfig, opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:Platform", name, None, opts)
        p = stack.platform
        project, region = stack.gcp_project, stack.gcp_region
        labels = dict(p.labels)

        # --- Google Cloud: network, cluster, node pools ------------------------------------
        profiles = p.effective_profiles
        # Profiles or budgets that name groups: the allocator asks Cloud Identity.
        checks_groups = uses_groups(profiles) or any(
            m.member.startswith("group:") for m in (p.budgets.members if p.budgets else [])) \
            or any(m.startswith("group:") for m in (p.access.admins if p.access else []))
        self.apis = ProjectApis(f"{name}-apis", ProjectApisArgs(
                project, extra=((GROUPS_API,) if checks_groups else ())
                                + (("bigquery.googleapis.com",) if p.usage_export.enabled else ())
                                + (("monitoring.googleapis.com", "logging.googleapis.com")
                                   if p.monitoring.enabled else ())), opts=pulumi.ResourceOptions(parent=self))
        # Every Google Cloud resource of the platform waits for the APIs. A component's
        # `depends_on` does not reach the resources inside it (the SDK records a child's own
        # dependencies only); a transformation does: it runs for the component's children and
        # their children (Pulumi docs, "Resource options: transformations").
        child = after_apis = pulumi.ResourceOptions(
            parent=self, transformations=[apis_first(self.apis.services)])
        self.network = Network(f"{name}", NetworkArgs(p.network, region, labels), opts=after_apis)
        system_sa = ServiceAccount(f"{name}-system-nodes", ServiceAccountArgs(
                account_id(name, "system-nodes"), "sdfleet system node pool", project, NODE_ROLES),
                opts=after_apis)
        # The router runs on the system pool: its port admits the load balancer only.
        self.router_firewall = self.network.only_load_balancer_to_router(
            f"{name}-deny-internal-to-router", system_sa.email)
        self.cluster = GkeCluster(f"{name}-gke", GkeClusterArgs(
            config=p.cluster, network_config=p.network, network=self.network, project=project,
            region=region, bootstrap_service_account=system_sa.email, labels=labels),
            opts=after_apis)
        self.system_pool = SystemNodePool(f"{name}-system-pool", SystemNodePoolArgs(
            config=p.system_pool, cluster=self.cluster.cluster, region=region, labels=labels,
            service_account=system_sa, zones=p.cluster.zones), opts=child)
        # With preloaded disks, each GPU pool starts its nodes with the disk image of every
        # WebUI image its profiles run; the disk images are made after the images are built
        # (below), so the pools take them as outputs resolved then.
        preload = p.images.preload_disk
        disk_of: dict[str, pulumi.Output[str]] = {}
        resolve_disk: dict[str, Callable[[pulumi.Output[str]], None]] = {}
        if preload is not None:
            for pr in profiles:
                image = webui_image_name(pr.framework)
                if image not in disk_of:
                    disk_of[image], resolve_disk[image] = pulumi.deferred_output()
        self.gpu_pools = {
            pool.name: GpuNodePool(f"{name}-gpu-{pool.name}", GpuNodePoolArgs(
                config=pool, cluster=self.cluster.cluster, project=project, region=region,
                prefix=name, labels=labels, preload_disks=[
                    disk_of[image] for image in dict.fromkeys(
                        webui_image_name(pr.framework) for pr in profiles if pr.gpu_pool == pool.name)
                    if image in disk_of]), opts=child)
            for pool in p.gpu_pools
        }
        self.k8s = ClusterProvider(f"{name}-cluster", self.cluster, opts=child)

        # --- Google Cloud: storage, cache, registry ------------------------------------------
        zone = (p.cluster.zones or [f"{region}-a"])[0]
        self.store = SharedStore(f"{name}", SharedStoreArgs(
            config=p.storage, network=self.network, region=region, zone=zone, labels=labels),
            opts=after_apis)
        self.cache = RoutingCache(f"{name}", RoutingCacheArgs(
            config=p.cache, network=self.network, region=region, project=project, labels=labels),
            opts=after_apis)
        node_members = [system_sa.member] + [g.service_account.member for g in self.gpu_pools.values()]
        self.registry = ImageRegistry(f"{name}", ImageRegistryArgs(
                project, region, labels, node_members), opts=after_apis)
        # Built by Cloud Build before anything runs them (or taken from images.prebuilt).
        # One WebUI image per framework the profiles run.
        webui_names = list(dict.fromkeys(webui_image_name(pr.framework) for pr in profiles))
        self.images = ImageBuilds(f"{name}-images", ImageBuildArgs(
            images=["router", *webui_names], prebuilt=dict(p.images.prebuilt), project=project,
            region=region, registry=self.registry, labels=labels,
            depends_on=self.apis.services), opts=child)
        if preload is not None:
            self.preload_disks = PreloadDisks(f"{name}-disks", PreloadDisksArgs(
                config=preload, images={image: self.images.reference(image) for image in disk_of},
                project=project, region=region, zone=(p.cluster.zones or [f"{region}-a"])[0],
                prefix=name, registry=self.registry,
                # The subnet's path once it exists (the builder's VM runs in it).
                subnetwork=self.network.subnet.id.apply(
                    lambda _: f"projects/{project}/regions/{region}/subnetworks/{self.network.subnet_name}"),
                labels=labels, depends_on=self.apis.services), opts=child)
            for image, resolve in resolve_disk.items():
                resolve(self.preload_disks.disk_images[image])
        # The image of the default profile runs the shared volume's and model sync's Jobs.
        default_profile = next(pr for pr in profiles if pr.default)
        webui_image = self.images.reference(webui_image_name(default_profile.framework))
        router_image = self.images.reference("router")

        # --- Identities and the IAP audience -----------------------------------------------
        project_number = gcp.organizations.get_project_output(
            project_id=project, opts=pulumi.InvokeOutputOptions(depends_on=[
                self.apis.by_name["cloudresourcemanager.googleapis.com"]])).number
        # The audience comes from the load balancer's backend service, which is built on the
        # router Service's NEGs: resolved below, once the load balancer exists.
        self.iap_audience, resolve_audience = pulumi.deferred_output()
        self.router_identity = WorkloadIdentity(f"{name}-router", WorkloadIdentityArgs(
            prefix=name, purpose="router", project=project, namespace=ROUTER_NAMESPACE,
            ksa_name=ROUTER_KSA, workload_pool=self.cluster.workload_pool), opts=child)
        self.cache.grant_access(f"{name}-router", self.router_identity.member)

        # --- Kubernetes ---------------------------------------------------------------------
        kube = pulumi.ResourceOptions(parent=self, providers=[self.k8s.provider],
                                      depends_on=[self.system_pool.node_pool])
        # Spot first, on-demand after, for the pools that ask for it (before any pod selects them).
        fallbacks = [pool for pool in self.gpu_pools.values() if pool.compute_class]
        self.capacity_classes = CapacityClasses(f"{name}-capacity", CapacityClassesArgs(
            pools=fallbacks), opts=kube) if fallbacks else None
        self.namespaces = Namespaces(f"{name}-ns", {ROUTER_NAMESPACE: "restricted",
                                                    p.fleet.namespace: "baseline"}, opts=kube)
        in_namespaces = pulumi.ResourceOptions.merge(kube, pulumi.ResourceOptions(
            depends_on=list(self.namespaces.namespaces.values())))
        self.agones = Agones(f"{name}-agones", AgonesArgs(
            fleet_namespace=p.fleet.namespace,
            scheduled_autoscaler=any(pr.peak_hours is not None for pr in profiles),
            system=SYSTEM_PLACEMENT), opts=in_namespaces)
        self.shared_volume = SharedVolume(f"{name}-shared", SharedVolumeArgs(
            namespace=p.fleet.namespace, server=self.store.ip_address, share=p.storage.share_name,
            capacity_gb=p.storage.capacity_gb, image=webui_image, placement=SYSTEM_PLACEMENT,
            connections=p.storage.connections),
            opts=in_namespaces)
        # Whatever mounts a folder of the share takes the claim once the folders exist.
        self.fleet = WebuiFleet(f"{name}-webui", WebuiFleetArgs(
            fleet=p.fleet, webui=p.webui, culling=p.culling, profiles=[
                ProfileFleet(profile=pr, pool=p.gpu_pool(pr.gpu_pool),
                             image=self.images.reference(webui_image_name(pr.framework)),
                             placement=gpu_placement(p.gpu_pool(pr.gpu_pool), name)) for pr in profiles],
            claim=self.shared_volume.ready_claim, router_namespace=ROUTER_NAMESPACE,
            agones_release=self.agones.release, api_server_cidr=p.network.control_plane_cidr),
            opts=pulumi.ResourceOptions.merge(in_namespaces, pulumi.ResourceOptions(
                depends_on=[self.capacity_classes] if self.capacity_classes else [])))
        self.model_sync = ModelSync(f"{name}-model-sync", ModelSyncArgs(
            models=p.models, namespace=p.fleet.namespace, image=webui_image,
            claim=self.shared_volume.ready_claim, sub_path="models",
            placement=SYSTEM_PLACEMENT,
            civitai_token=stack.secrets.civitai_token,
            huggingface_token=stack.secrets.huggingface_token), opts=in_namespaces)

        # --- What operators see ---------------------------------------------------------------
        if p.monitoring.enabled:
            self.operators = OperatorsView(f"{name}-ops", OperatorsViewArgs(
                config=p.monitoring, project=project, prefix=name,
                webui_namespace=p.fleet.namespace), opts=after_apis)

        # --- Functions: allocator and culler --------------------------------------------------
        self.functions = ControlFunctions(f"{name}-fn", ControlFunctionsArgs(
            project=project, project_number=project_number, region=region, network=self.network,
            connector_cidr=p.network.connector_cidr, cache=self.cache, culling=p.culling,
            settings=FunctionSettings(
                fleet_name=self.fleet.fleet_name, fleet_namespace=p.fleet.namespace,
                cluster_endpoint=self.cluster.private_endpoint,
                cluster_ca=self.cluster.ca_certificate, iap_audience=self.iap_audience,
                gpus_per_pod=p.gpu_pool(default_profile.gpu_pool).gpus_per_pod,
                profiles=None if profiles[0].implicit else profile_records(
                    profiles, self.fleet.fleet_names, p, region),
                budgets=budget_records(p.budgets), admins=tuple(p.access.admins),
                usage_export=p.usage_export, prefix=name),
            router_member=self.router_identity.member, labels=labels), opts=after_apis)
        self.fleet_access = FleetAccess(f"{name}-fleet-access", FleetAccessArgs(
            namespace=p.fleet.namespace, allocator_user=self.functions.allocator_account.email,
            culler_user=self.functions.culler_account.email), opts=in_namespaces)

        # --- Router and the load balancer with IAP -----------------------------------------
        neg_name = f"{name}-router"
        self.router = Router(f"{name}-router", RouterSettings(
            webui=p.webui, placement=SYSTEM_PLACEMENT, image=router_image, namespace=ROUTER_NAMESPACE, ksa_name=ROUTER_KSA,
            gsa_annotation=self.router_identity.annotation,
            redis_host=self.cache.host, redis_port=self.cache.port,
            redis_auth_secret=self.cache.auth_secret.name, redis_ca_secret=self.cache.ca_secret.name,
            allocator_url=self.functions.allocator_url, iap_audience=self.iap_audience,
            neg_name=neg_name), opts=in_namespaces)
        # Present whenever oauthClientId is set (components/config/loader.py checks it).
        oauth_secret = (stack.secrets.iap_oauth_client_secret
                        if p.access.oauth_client_id is not None else None)
        self.load_balancer = IapLoadBalancer(f"{name}-lb", LoadBalancerArgs(
            access=p.access, webui=p.webui, project=project, project_number=project_number,
            labels=labels, neg_name=neg_name, router_namespace=ROUTER_NAMESPACE,
            router_service=self.router.service, oauth_client_secret=oauth_secret,
            zones=self.system_pool.node_pool.node_locations), opts=after_apis)
        resolve_audience(self.load_balancer.audience)

        self.outputs = {
            "url": self.load_balancer.url,
            "clusterName": self.cluster.name,
            "kubeconfig": self.k8s.kubeconfig,
            "registry": self.registry.path,
            "ingressIp": self.load_balancer.address.out("address"),
            "iapAudience": self.iap_audience,
            "images": self.images.references,
            "gpuPools": [pool.name for pool in p.gpu_pools],
        }
        if not profiles[0].implicit:
            self.outputs["profiles"] = {pr.name: self.fleet.fleet_names[pr.name] for pr in profiles}
        if self.functions.usage_export is not None:
            self.outputs["usageTable"] = self.functions.usage_export.table_ref
        if checks_groups:
            # Cloud Identity answers a group check only for an account allowed to read the
            # group's members (README, "Profiles": grant it Groups Reader).
            self.outputs["allocatorServiceAccount"] = self.functions.allocator_account.email
        self.register_outputs(self.outputs)
