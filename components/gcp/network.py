"""The VPC of a GCP platform: one subnet, secondary ranges, NAT, private services, firewall.

Nodes are private (no external IPs), so Cloud NAT gives them egress for image pulls and model
downloads. Firewall rules are least privilege: traffic inside the VPC ranges, Google's
load-balancer health-check ranges to the serving ports, and the control plane to the webhook
ports of the controllers. Nothing is open to 0.0.0.0/0: people reach pods only through the
Ingress and the router, which reaches WebUI pods by pod IP inside the VPC.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_gcp as gcp

from components.config import NetworkConfig

# Google Front End and health-check source ranges (Cloud Load Balancing docs).
LB_HEALTH_CHECK_RANGES = ["35.191.0.0/16", "130.211.0.0/22"]
# Ports the router serves on (the NEG targets pods directly) and webhook ports the GKE control
# plane must reach on nodes (Agones, KEDA, cert managers).
ROUTER_PORTS = ["8080"]
WEBHOOK_PORTS = ["443", "8081", "8443", "9443"]


class Network(pulumi.ComponentResource):
    """`sdfleet:gcp:Network`: VPC, subnet with pod/service ranges, router + NAT, firewall."""

    PODS_RANGE = "pods"
    SERVICES_RANGE = "services"

    def __init__(self, name: str, config: NetworkConfig, region: str,
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:gcp:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        self.vpc = gcp.compute.Network(
            f"{name}-vpc", name=f"{name}-vpc", auto_create_subnetworks=False,
            routing_mode="REGIONAL", delete_default_routes_on_create=False, opts=child)

        self.subnet = gcp.compute.Subnetwork(
            f"{name}-nodes", name=f"{name}-nodes", region=region, network=self.vpc.id,
            ip_cidr_range=config.nodes_cidr, private_ip_google_access=True,
            secondary_ip_ranges=[
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=self.PODS_RANGE, ip_cidr_range=config.pods_cidr),
                gcp.compute.SubnetworkSecondaryIpRangeArgs(
                    range_name=self.SERVICES_RANGE, ip_cidr_range=config.services_cidr),
            ],
            log_config=gcp.compute.SubnetworkLogConfigArgs(
                aggregation_interval="INTERVAL_5_MIN", flow_sampling=0.1,
                metadata="INCLUDE_ALL_METADATA"),
            opts=child)

        self.router = gcp.compute.Router(
            f"{name}-router", name=f"{name}-router", region=region, network=self.vpc.id,
            opts=child)
        self.nat = gcp.compute.RouterNat(
            f"{name}-nat", name=f"{name}-nat", region=region, router=self.router.name,
            nat_ip_allocate_option="AUTO_ONLY",
            source_subnetwork_ip_ranges_to_nat="ALL_SUBNETWORKS_ALL_IP_RANGES",
            log_config=gcp.compute.RouterNatLogConfigArgs(enable=True, filter="ERRORS_ONLY"),
            opts=child)

        # Private services access: Filestore and Memorystore get addresses in this range.
        services_net = ipaddress.ip_network(config.private_services_cidr)
        self.private_services_range = gcp.compute.GlobalAddress(
            f"{name}-private-services", name=f"{name}-private-services",
            purpose="VPC_PEERING", address_type="INTERNAL", network=self.vpc.id,
            address=str(services_net.network_address), prefix_length=services_net.prefixlen,
            opts=child)
        self.private_services = gcp.servicenetworking.Connection(
            f"{name}-private-services", network=self.vpc.id,
            service="servicenetworking.googleapis.com",
            reserved_peering_ranges=[self.private_services_range.name], opts=child)

        internal = [config.nodes_cidr, config.pods_cidr, config.services_cidr]
        self.firewall_internal = gcp.compute.Firewall(
            f"{name}-allow-internal", name=f"{name}-allow-internal", network=self.vpc.id,
            direction="INGRESS", source_ranges=internal, priority=1000,
            description="Traffic between nodes, pods and services of this VPC",
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp"),
                    gcp.compute.FirewallAllowArgs(protocol="udp"),
                    gcp.compute.FirewallAllowArgs(protocol="icmp")],
            opts=child)
        self.firewall_health_checks = gcp.compute.Firewall(
            f"{name}-allow-lb-health-checks", name=f"{name}-allow-lb-health-checks",
            network=self.vpc.id, direction="INGRESS", source_ranges=LB_HEALTH_CHECK_RANGES,
            description="Google load balancer and health checks to the router's pods only",
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=ROUTER_PORTS)],
            opts=child)
        self.firewall_webhooks = gcp.compute.Firewall(
            f"{name}-allow-control-plane-webhooks", name=f"{name}-allow-cp-webhooks",
            network=self.vpc.id, direction="INGRESS", source_ranges=[config.control_plane_cidr],
            description="GKE control plane to admission webhooks (Agones) on nodes",
            allows=[gcp.compute.FirewallAllowArgs(protocol="tcp", ports=WEBHOOK_PORTS)],
            opts=child)

        self.register_outputs({"network": self.vpc.id, "subnetwork": self.subnet.id})
