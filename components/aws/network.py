"""The VPC of the EKS variant: private node subnets across zones, NAT per zone, S3 endpoint.

Nodes have no public IPs; each zone's NAT gateway gives its private subnet egress for image
pulls and model downloads, so losing one zone never cuts the others off. Results go to S3
through a gateway endpoint, which keeps that traffic (the bulk of it) off NAT and its per-GB
charge. Public subnets hold only the NAT gateways.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws.raw import AwsResource
from components.aws.tags import tags_for
from components.config import AwsNetworkConfig


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: a quarter of the VPC per node subnet, /prefix+4 per public one.

    Node subnets are large because the VPC CNI gives every pod a VPC address.
    """
    vpc = ipaddress.ip_network(vpc_cidr)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    private = [str(q) for q in quarters[:zones]]
    public = [str(s) for s in quarters[3].subnets(prefixlen_diff=2)][:zones]
    return private, public


@dataclass(frozen=True)
class NetworkArgs:
    config: AwsNetworkConfig
    region: str
    cluster_name: str
    labels: dict[str, str]


class Network(pulumi.ComponentResource):
    """`sdfleet:aws:Network`: VPC, subnets, internet and NAT gateways, routes, S3 endpoint."""

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None):
        config, region, cluster_name, labels = args.config, args.region, args.cluster_name, args.labels
        super().__init__("sdfleet:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(state="available").names

        self.vpc = AwsResource(
            f"{name}-vpc", "aws:ec2/vpc:Vpc",
            {"cidrBlock": config.vpc_cidr, "enableDnsHostnames": True, "enableDnsSupport": True,
             "tags": tags_for(labels, f"{name}-vpc")}, opts=child)
        self.igw = AwsResource(
            f"{name}-igw", "aws:ec2/internetGateway:InternetGateway",
            {"vpcId": self.vpc.id, "tags": tags_for(labels, f"{name}-igw")}, opts=child)
        public_rt = AwsResource(
            f"{name}-public", "aws:ec2/routeTable:RouteTable",
            {"vpcId": self.vpc.id, "tags": tags_for(labels, f"{name}-public")}, opts=child)
        AwsResource(f"{name}-public-default", "aws:ec2/route:Route",
                    {"routeTableId": public_rt.id, "destinationCidrBlock": "0.0.0.0/0",
                     "gatewayId": self.igw.id}, opts=child)

        private_cidrs, public_cidrs = subnet_cidrs(config.vpc_cidr, config.zone_count)
        self.private_subnets: list[AwsResource] = []
        self.public_subnets: list[AwsResource] = []
        private_route_tables = []
        for i in range(config.zone_count):
            zone = zones[i]
            public = AwsResource(
                f"{name}-public-{i}", "aws:ec2/subnet:Subnet",
                {"vpcId": self.vpc.id, "cidrBlock": public_cidrs[i], "availabilityZone": zone,
                 "mapPublicIpOnLaunch": False,
                 "tags": tags_for(labels, f"{name}-public-{i}", **{"kubernetes.io/role/elb": "1"})},
                opts=child)
            AwsResource(f"{name}-public-{i}", "aws:ec2/routeTableAssociation:RouteTableAssociation",
                        {"subnetId": public.id, "routeTableId": public_rt.id}, opts=child)
            eip = AwsResource(f"{name}-nat-{i}", "aws:ec2/eip:Eip",
                              {"domain": "vpc", "tags": tags_for(labels, f"{name}-nat-{i}")},
                              opts=child)
            nat = AwsResource(
                f"{name}-nat-{i}", "aws:ec2/natGateway:NatGateway",
                {"allocationId": eip.id, "subnetId": public.id,
                 "tags": tags_for(labels, f"{name}-nat-{i}")},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.igw]))
            private = AwsResource(
                f"{name}-private-{i}", "aws:ec2/subnet:Subnet",
                {"vpcId": self.vpc.id, "cidrBlock": private_cidrs[i], "availabilityZone": zone,
                 "tags": tags_for(labels, f"{name}-private-{i}",
                                  **{"kubernetes.io/role/internal-elb": "1",
                                     f"kubernetes.io/cluster/{cluster_name}": "shared"})},
                opts=child)
            private_rt = AwsResource(
                f"{name}-private-{i}", "aws:ec2/routeTable:RouteTable",
                {"vpcId": self.vpc.id, "tags": tags_for(labels, f"{name}-private-{i}")},
                opts=child)
            AwsResource(f"{name}-private-{i}-default", "aws:ec2/route:Route",
                        {"routeTableId": private_rt.id, "destinationCidrBlock": "0.0.0.0/0",
                         "natGatewayId": nat.id}, opts=child)
            AwsResource(f"{name}-private-{i}", "aws:ec2/routeTableAssociation:RouteTableAssociation",
                        {"subnetId": private.id, "routeTableId": private_rt.id}, opts=child)
            self.public_subnets.append(public)
            self.private_subnets.append(private)
            private_route_tables.append(private_rt)

        self.s3_endpoint = AwsResource(
            f"{name}-s3", "aws:ec2/vpcEndpoint:VpcEndpoint",
            {"vpcId": self.vpc.id, "serviceName": f"com.amazonaws.{region}.s3",
             "vpcEndpointType": "Gateway",
             "routeTableIds": [rt.id for rt in private_route_tables],
             "tags": tags_for(labels, f"{name}-s3")}, opts=child)

        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs({"vpcId": self.vpc.id, "privateSubnetIds": self.private_subnet_ids})
