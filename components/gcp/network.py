"""The VPC of a GCP platform: one subnet, secondary ranges, NAT, private services, firewall.

Nodes are private (no external IPs), so Cloud NAT gives them egress for image pulls and model
downloads. Firewall rules are least privilege: traffic inside the VPC ranges, Google's
load-balancer ranges to the router's port (and nothing else inside the VPC to it: a deny rule
on the nodes the router runs on), and the control plane to the webhook ports of the
controllers. Nothing is open to 0.0.0.0/0: people reach pods only through the load balancer
(IAP) and the router, which reaches WebUI pods by pod IP inside the VPC.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_gcp as gcp

from components.config import NetworkConfig
from components.gcp.compute import ComputeResource
from components.k8s.router import ROUTER_PORT

# Where a global external Application Load Balancer's health checks and its proxies (GFEs)
# reach zonal-NEG backends from: the same two ranges (Cloud Load Balancing docs, "Firewall
# rules", global external Application Load Balancer row: "GFE proxy ranges: same as the
# health check ranges if the backends are instance groups, zonal NEGs (GCE_VM_IP_PORT)...").
LB_HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
# Ports the router serves on (the NEG targets pods directly) and webhook ports the GKE control
# plane must reach on nodes (Agones, KEDA, cert managers).
ROUTER_PORTS = [str(ROUTER_PORT)]
WEBHOOK_PORTS = ["443", "8081", "8443", "9443"]


@dataclass(frozen=True)
class NetworkArgs:
    config: NetworkConfig
    region: str
    labels: dict[str, str]


class Network(pulumi.ComponentResource):
    """`sdfleet:gcp:Network`: VPC, subnet with pod/service ranges, router + NAT, firewall."""

    PODS_RANGE = "pods"
    SERVICES_RANGE = "services"

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None):
        config, region, labels = args.config, args.region, args.labels
        super().__init__("sdfleet:gcp:Network", name, None, opts)
        self.config = config
        child = pulumi.ResourceOptions(parent=self)

        self.vpc = ComputeResource("Network", f"{name}-vpc", {
            "name": f"{name}-vpc", "autoCreateSubnetworks": False, "routingMode": "REGIONAL",
            "deleteDefaultRoutesOnCreate": False}, opts=child)
        self.vpc_name = f"{name}-vpc"

        self.subnet_name = f"{name}-nodes"
        self.subnet = ComputeResource("Subnetwork", f"{name}-nodes", {
            "name": f"{name}-nodes", "region": region, "network": self.vpc.id,
            "ipCidrRange": config.nodes_cidr, "privateIpGoogleAccess": True,
            "secondaryIpRanges": [
                {"rangeName": self.PODS_RANGE, "ipCidrRange": config.pods_cidr},
                {"rangeName": self.SERVICES_RANGE, "ipCidrRange": config.services_cidr}],
            "logConfig": {"aggregationInterval": "INTERVAL_5_MIN", "flowSampling": 0.1,
                          "metadata": "INCLUDE_ALL_METADATA"}}, opts=child)

        self.router = ComputeResource("Router", f"{name}-router", {
            "name": f"{name}-router", "region": region, "network": self.vpc.id}, opts=child)
        self.nat = ComputeResource("RouterNat", f"{name}-nat", {
            "name": f"{name}-nat", "region": region, "router": f"{name}-router",
            "natIpAllocateOption": "AUTO_ONLY",
            "sourceSubnetworkIpRangesToNat": "ALL_SUBNETWORKS_ALL_IP_RANGES",
            "logConfig": {"enable": True, "filter": "ERRORS_ONLY"}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.router]))

        # Private services access: Filestore and Memorystore get addresses in this range.
        services_net = ipaddress.ip_network(config.private_services_cidr)
        self.private_services_range = ComputeResource("GlobalAddress", f"{name}-private-services", {
            "name": f"{name}-private-services", "purpose": "VPC_PEERING",
            "addressType": "INTERNAL", "network": self.vpc.id,
            "address": str(services_net.network_address),
            "prefixLength": services_net.prefixlen, "labels": labels}, opts=child)
        self.private_services = gcp.servicenetworking.Connection(
            f"{name}-private-services", network=self.vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[f"{name}-private-services"],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.private_services_range]))

        internal = [config.nodes_cidr, config.pods_cidr, config.services_cidr]
        self.firewall_internal = self._firewall(
            f"{name}-allow-internal", internal, "Traffic between nodes, pods and services of this VPC",
            [{"protocol": "tcp"}, {"protocol": "udp"}, {"protocol": "icmp"}])
        self.firewall_health_checks = self._firewall(
            f"{name}-allow-lb-health-checks", LB_HEALTH_CHECK_RANGES,
            "Google load balancer and health checks to the router's pods only",
            [{"protocol": "tcp", "ports": ROUTER_PORTS}])
        self.firewall_webhooks = self._firewall(
            f"{name}-allow-control-plane-webhooks", [config.control_plane_cidr],
            "GKE control plane to admission webhooks (Agones) on nodes",
            [{"protocol": "tcp", "ports": WEBHOOK_PORTS}], rule_name=f"{name}-allow-cp-webhooks")

        self.internal_ranges = internal + [config.connector_cidr]
        self.register_outputs({"network": self.vpc.id, "subnetwork": self.subnet.id})

    def only_load_balancer_to_router(self, name: str,
                                     node_account: pulumi.Input[str]) -> ComputeResource:
        """Deny the router's port on the nodes that run it to everything inside the VPC (pods,
        nodes, services, the functions' connector): only the load balancer's ranges, admitted
        by the health-check rule, reach it. Ahead of `allow-internal` (lower priority number
        wins, VPC firewall docs "Priority")."""
        return ComputeResource("Firewall", name, {
            "name": name, "network": self.vpc.id, "direction": "INGRESS", "priority": 900,
            "sourceRanges": self.internal_ranges, "targetServiceAccounts": [node_account],
            "description": "Nothing inside the VPC reaches the router's port: only the load "
                           "balancer (IAP) does",
            "denies": [{"protocol": "tcp", "ports": ROUTER_PORTS}]},
            opts=pulumi.ResourceOptions(parent=self))

    def _firewall(self, resource_name: str, source_ranges: list[str], description: str,
                  allows: list[dict], rule_name: str | None = None) -> ComputeResource:
        return ComputeResource("Firewall", resource_name, {
            "name": rule_name or resource_name, "network": self.vpc.id, "direction": "INGRESS",
            "priority": 1000, "sourceRanges": source_ranges, "description": description,
            "allows": allows}, opts=pulumi.ResourceOptions(parent=self))
