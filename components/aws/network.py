"""The VPC of the EKS variant: private node subnets across zones, NAT per zone, S3 endpoint.

Nodes have no public IPs; each zone's NAT gateway gives its private subnet egress for image
pulls and model downloads, so losing one zone never cuts the others off. Results go to S3
through a gateway endpoint, which keeps that traffic (the bulk of it) off NAT and its per-GB
charge. Public subnets hold only the NAT gateways.
"""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_aws as aws

from components.aws.tags import tags_for
from components.config import AwsConfig


def subnet_cidrs(vpc_cidr: str, zones: int) -> tuple[list[str], list[str]]:
    """(private, public) CIDRs: a quarter of the VPC per node subnet, /prefix+4 per public one.

    Node subnets are large because the VPC CNI gives every pod a VPC address.
    """
    vpc = ipaddress.ip_network(vpc_cidr)
    quarters = list(vpc.subnets(prefixlen_diff=2))
    private = [str(q) for q in quarters[:zones]]
    public = [str(s) for s in quarters[3].subnets(prefixlen_diff=2)][:zones]
    return private, public


class Network(pulumi.ComponentResource):
    """`sdfleet:aws:Network`: VPC, subnets, internet and NAT gateways, routes, S3 endpoint."""

    def __init__(self, name: str, config: AwsConfig, region: str, cluster_name: str,
                 labels: dict[str, str], opts: pulumi.ResourceOptions | None = None):
        super().__init__("sdfleet:aws:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zones = aws.get_availability_zones_output(state="available").names

        self.vpc = aws.ec2.Vpc(
            f"{name}-vpc", cidr_block=config.vpc_cidr, enable_dns_hostnames=True,
            enable_dns_support=True, tags=tags_for(labels, f"{name}-vpc"), opts=child)
        self.igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=self.vpc.id, tags=tags_for(labels, f"{name}-igw"), opts=child)
        public_rt = aws.ec2.RouteTable(
            f"{name}-public", vpc_id=self.vpc.id, tags=tags_for(labels, f"{name}-public"),
            opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=self.igw.id, opts=child)

        private_cidrs, public_cidrs = subnet_cidrs(config.vpc_cidr, config.zone_count)
        self.private_subnets: list[aws.ec2.Subnet] = []
        self.public_subnets: list[aws.ec2.Subnet] = []
        private_route_tables = []
        for i in range(config.zone_count):
            zone = zones[i]
            public = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=self.vpc.id, cidr_block=public_cidrs[i],
                availability_zone=zone, map_public_ip_on_launch=False,
                tags=tags_for(labels, f"{name}-public-{i}", **{"kubernetes.io/role/elb": "1"}),
                opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc",
                              tags=tags_for(labels, f"{name}-nat-{i}"), opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{i}", allocation_id=eip.id, subnet_id=public.id,
                tags=tags_for(labels, f"{name}-nat-{i}"),
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.igw]))
            private = aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=self.vpc.id, cidr_block=private_cidrs[i],
                availability_zone=zone,
                tags=tags_for(labels, f"{name}-private-{i}",
                              **{"kubernetes.io/role/internal-elb": "1",
                                 f"kubernetes.io/cluster/{cluster_name}": "shared"}),
                opts=child)
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-{i}", vpc_id=self.vpc.id,
                tags=tags_for(labels, f"{name}-private-{i}"), opts=child)
            aws.ec2.Route(f"{name}-private-{i}-default", route_table_id=private_rt.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=private.id,
                                          route_table_id=private_rt.id, opts=child)
            self.public_subnets.append(public)
            self.private_subnets.append(private)
            private_route_tables.append(private_rt)

        self.s3_endpoint = aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=self.vpc.id, service_name=f"com.amazonaws.{region}.s3",
            vpc_endpoint_type="Gateway", route_table_ids=[rt.id for rt in private_route_tables],
            tags=tags_for(labels, f"{name}-s3"), opts=child)

        self.private_subnet_ids = [s.id for s in self.private_subnets]
        self.register_outputs({"vpcId": self.vpc.id, "privateSubnetIds": self.private_subnet_ids})
