"""`AwsResource`: an AWS resource registered by type token from camelCase inputs.

It registers exactly what the typed `pulumi_aws.<module>.<Class>` registers (same type token,
provider package and version). Why: importing `pulumi_aws.ec2` costs about 0.7 s, because its
package imports every EC2 resource and their input types; the VPC needs ten simple ones, and
`make plan` has a budget (docs/architecture.md section 7). Same reason as components/k8s/objects.py.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
from pulumi_aws import _utilities as aws_utilities


class AwsResource(pulumi.CustomResource):
    """`AwsResource(name, "aws:ec2/vpc:Vpc", {"cidrBlock": ...})`; `id` is always an output."""

    def __init__(self, resource_name: str, type_token: str, props: dict[str, Any], *,
                 opts: Optional[pulumi.ResourceOptions] = None):
        opts = pulumi.ResourceOptions.merge(aws_utilities.get_resource_opts_defaults(), opts)
        super().__init__(type_token, resource_name, dict(props), opts)
